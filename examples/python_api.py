"""ffseg from Python: a model, a predictor over face crops, and files to documents.

The code of the README's "Python API" section, as one script; the tests run
it against a small model. Run it from a folder that holds a trained run
(``runs/sample/``, from ``python -m experiments.train``) and a face photo:

    python examples/python_api.py [MODEL] [PHOTO_OR_VIDEO ...]
"""

import sys

from skimage import data

import ffseg
from ffseg.signal import faces


def main(model="runs/sample/export", paths=("photo.jpg",)):
    # Either form training writes: the SavedModel folder or the .keras file.
    predictor = ffseg.load_predictor(model)

    # Face crops as training made them: dlib's box enlarged 1.3x, 299 px.
    image = data.astronaut()
    box = faces.face_box(faces.FaceDetector().largest(image), image.shape)
    crop = faces.crop(image, box, 299)
    outputs = predictor.predict(crop[None])
    print("score", outputs["score"].round(3), "map", outputs["localization_map"].shape)
    # Crops of any other size are area-resized to 299 first, as a client of the
    # SavedModel would send them.
    small = faces.crop(image, box, 120)
    print("score of a 120 px crop", predictor.predict(small[None])["score"].round(3))

    # Images and videos -> the same document `ffseg detect` writes as JSON.
    for path in paths:
        document = ffseg.detect_file(path, predictor)
        verdict = document["verdict"]
        print(path, document["kind"], verdict["label"], round(verdict["score"], 3))


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["runs/sample/export"]), paths=sys.argv[2:] or ["photo.jpg"])
