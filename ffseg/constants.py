"""Facts of FaceForensics++ and of the paper that several layers share.

One home for each: the signal layer crops with `BOX_SCALE` and `CROP_SIZE`,
the dataset builders store what it crops, the models and the serving
signature take it, and reports name the classes, all from here. This module
imports nothing, so every layer (the TensorFlow-free signal layer included)
can use it.
"""

# The four FF++ manipulation methods with masks, in FF++'s order; their
# method ids are 1..4 (0 is real) in every dataset, model and report.
METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
# Class names of the 5-class task (paper Table V): real, then the methods.
CLASS_NAMES = ("real",) + METHODS
# Pseudo-fakes made on the fly from real faces (ffseg.signal.blend) carry
# method id 5, after the FF++ methods, so reports tell them apart; they are
# fakes (label 1) and no class of the 5-class task.
PSEUDO_FAKE = "pseudo-fake"
PSEUDO_FAKE_METHOD = len(CLASS_NAMES)
# Class names of the binary task.
BINARY_CLASS_NAMES = ("real", "fake")

# FF++ video qualities: x264 constant rate factor 23 (HQ) and 40 (LQ).
QUALITIES = ("c23", "c40")
# The noise label's sigma (paper Eq. 5), a standard deviation in 0..255
# pixel units: 5 for c23 (HQ), 10 for c40 (LQ).
NOISE_SIGMA = {"c23": 5.0, "c40": 10.0}

# Face crops: dlib's frontal face box enlarged 1.3x about its centre, made
# square, resized to 299 x 299 (Xception's input side). Training and
# inference must crop alike, or accuracy collapses.
BOX_SCALE = 1.3
CROP_SIZE = 299

# The paper's two training steps (Sec. IV-B.1), in order.
TRAINING_STAGES = ("semantic", "full")

# The first bytes of the still-image formats that OpenCV decodes. FFmpeg's
# image2 demuxer would open such a file as a one-frame "video".
IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def image_format(head: bytes):
    """The still-image format that a file's first 16 bytes announce, or None."""
    for signature, kind in IMAGE_SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None
