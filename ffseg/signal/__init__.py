"""The signal layer: video -> face crops, masks and noise labels.

numpy, OpenCV, PyWavelets and dlib only: nothing here imports TensorFlow or
Keras (a test enforces it), so dataset builders, Beam workers and the
TensorFlow-free input path can use it anywhere.

- `video`: decoding with verified frame counts, even frame sampling, writing;
- `faces`: dlib's detector, the 1.3x square box, crops, box tracking;
- `masks`: binarising lossy mask videos;
- `noise`: the wavelet noise residual (paper Eq. 4-5);
- `extract`: one video (and its mask video) -> examples, streamed;
- `sample`: the embedded FF++-layout sample generator.
"""
