"""Writes `dummy_data/`: a tiny FaceForensics++ tree for the builder's tests.

Run from the repository root (it rewrites the folder; commit the result):

    .venv/bin/python tfds_ffpp/ffpp/make_dummy_data.py

It is `ffseg.signal.sample.make_sample_ffpp` at 320x240, 3 frames per video, one
[target, source] pair per split (ids 000-005), plus the kinds of bad input
that real FF++ downloads contain, so the tests can check that the build
survives them and lists each one in `build_report.json`:

==========================================  =====================================
file (both c23 and c40 unless said)         damage
==========================================  =====================================
Deepfakes/000_001                            truncated to half its bytes (corrupt)
Deepfakes/002_003                            zero bytes
Face2Face/001_000 mask                       only the first frame (short mask video)
NeuralTextures/004_005                       frames without any face (camera off the face)
FaceSwap/005_004                             missing (listed in splits/test.json)
FaceSwap/003_002 mask                        missing
real/002 frame 1                             face blanked out (kept, flagged)
==========================================  =====================================

The official FF++ split files are copied into `official_splits/` (the
builder ignores that folder; a test checks with them that no video is in two
splits).
"""

import argparse
import json
import pathlib
import shutil
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent

NUM_FRAMES = 3
FRAME_SIZE = (320, 240)
FACE_SIDE = 110

# What the tests expect of the tree (imported by ffpp_dataset_builder_test.py).
DAMAGE = {
    "corrupt": "Deepfakes/000_001",
    "empty": "Deepfakes/002_003",
    "short_mask": "Face2Face/001_000",
    "short_mask_frames": 1,
    "no_face": "NeuralTextures/004_005",
    "missing_video": "FaceSwap/005_004",
    "missing_mask": "FaceSwap/003_002",
    "blanked_frame": ("real/002", 1),
}


def _video_files(root, name, qualities=("c23", "c40")):
    method, video_id = name.split("/")
    if method == "real":
        return [
            root / "original_sequences" / "youtube" / q / "videos" / f"{video_id}.mp4"
            for q in qualities
        ]
    return [
        root / "manipulated_sequences" / method / q / "videos" / f"{video_id}.mp4"
        for q in qualities
    ]


def _mask_file(root, name):
    method, video_id = name.split("/")
    return root / "manipulated_sequences" / method / "masks" / "videos" / f"{video_id}.mp4"


def make_dummy_data(out, official_splits=None):
    from ffseg.signal import sample
    from ffseg.signal import video as video_lib

    out = pathlib.Path(out)
    if official_splits is None or not pathlib.Path(official_splits).is_dir():
        # Without the FF++ files at hand, keep the copy already committed.
        official_splits = out / "official_splits"
    official = {
        split: json.loads((pathlib.Path(official_splits) / f"{split}.json").read_text())
        for split in ("train", "val", "test")
        if (pathlib.Path(official_splits) / f"{split}.json").exists()
    }
    if out.exists():
        shutil.rmtree(out)
    sample.make_sample_ffpp(
        out,
        seed=0,
        num_frames=NUM_FRAMES,
        pairs_per_split=(1, 1, 1),
        frame_size=FRAME_SIZE,
        face_side=FACE_SIDE,
    )

    for path in _video_files(out, DAMAGE["corrupt"]):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    for path in _video_files(out, DAMAGE["empty"]):
        path.write_bytes(b"")

    mask = _mask_file(out, DAMAGE["short_mask"])
    frames = [frame for _, frame in video_lib.iter_frames(mask)]
    video_lib.write_video(mask, frames[: DAMAGE["short_mask_frames"]], qp=sample.MASK_QP)

    # A clip of the background only: the top-left corner of the real frames
    # of the target, scaled up, where the photo shows no face.
    target = DAMAGE["no_face"].split("/")[1].split("_")[0]
    real_c23 = _video_files(out, f"real/{target}", ("c23",))[0]
    corner = [
        _upscale(frame[: FRAME_SIZE[1] // 3, : FRAME_SIZE[0] // 3])
        for _, frame in video_lib.iter_frames(real_c23)
    ]
    for path, quality in zip(_video_files(out, DAMAGE["no_face"]), ("c23", "c40")):
        video_lib.write_video(path, corner, qp=sample.QUALITY_QP[quality])

    for path in _video_files(out, DAMAGE["missing_video"]):
        path.unlink()
    _mask_file(out, DAMAGE["missing_mask"]).unlink()

    name, index = DAMAGE["blanked_frame"]
    for path, quality in zip(_video_files(out, name), ("c23", "c40")):
        frames = [frame for _, frame in video_lib.iter_frames(path)]
        # Mid grey, no face: the detector misses it, the extractor borrows
        # the box of a neighbouring frame and flags the frame.
        frames[index] = np.full_like(frames[index], 128)
        video_lib.write_video(path, frames, qp=sample.QUALITY_QP[quality])

    if official:
        target_dir = out / "official_splits"
        target_dir.mkdir()
        for split, pairs in official.items():
            # One pair per line: small, and diffs stay readable.
            lines = ",\n".join(json.dumps(pair) for pair in pairs)
            (target_dir / f"{split}.json").write_text(f"[\n{lines}\n]\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


def _upscale(patch):
    import cv2

    return cv2.resize(patch, FRAME_SIZE, interpolation=cv2.INTER_CUBIC)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "dummy_data"))
    parser.add_argument(
        "--official_splits",
        default=None,
        help="folder with FF++'s train/val/test.json (the FF++ repository's dataset/splits), "
        "copied to official_splits/; default: keep the copy already committed",
    )
    args = parser.parse_args(argv)
    make_dummy_data(args.out, args.official_splits)


if __name__ == "__main__":
    sys.exit(main())
