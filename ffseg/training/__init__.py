"""Training FFSeg: the paper's two steps, run folders, callbacks, distribution.

- `trainer`: `train(config, model_dir)`, what `python -m experiments.train` runs;
- `run_folder`: what a run may do with its `model_dir` (new, resume,
  overwrite), decided before anything is written;
- `callbacks`: best checkpoints, epoch records, validation EER and pixel
  AUC, TensorBoard map images;
- `distribution`: the tf.distribute strategy, the chief, and the
  version-gated workaround for Keras' multi-worker `fit`.
"""
