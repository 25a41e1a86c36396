"""Writes `dummy_data/`: a tiny Celeb-DF (v2) tree for the builder's tests.

Run from the repository root (it rewrites the folder; commit the result):

    .venv/bin/python tfds_ffpp/celeb_df/make_dummy_data.py

The videos are real face videos taken from the `ffpp` dummy data (made from
public photos by `ffseg.sample`), renamed into Celeb-DF's layout, plus two
faults a real download can have: a truncated video and a listed video that is
missing.
"""

import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
FFPP = HERE.parent / "ffpp" / "dummy_data"

# Celeb-DF name <- ffpp dummy video.
COPIES = {
    "Celeb-real/id0_0000": "original_sequences/youtube/c23/videos/000.mp4",
    "Celeb-real/id1_0000": "original_sequences/youtube/c23/videos/001.mp4",
    "YouTube-real/00000": "original_sequences/youtube/c23/videos/003.mp4",
    "Celeb-synthesis/id0_id1_0000": "manipulated_sequences/FaceSwap/c23/videos/000_001.mp4",
    "Celeb-synthesis/id1_id0_0000": "manipulated_sequences/Deepfakes/c23/videos/001_000.mp4",
    "Celeb-synthesis/id1_id0_0001": "manipulated_sequences/Face2Face/c23/videos/003_002.mp4",
}
TRUNCATED = "Celeb-synthesis/id0_id1_0001"  # half of a good video's bytes
MISSING = "Celeb-real/id2_0000"  # listed, not on disk
TEST_LIST = [
    (1, "Celeb-real/id0_0000"),
    (1, "YouTube-real/00000"),
    (0, "Celeb-synthesis/id0_id1_0000"),
    (0, "Celeb-synthesis/id1_id0_0000"),
    (0, TRUNCATED),
    (1, MISSING),
]
# What the tests expect: test = 4 good videos x 3 frames, train = the 2 unlisted ones.
SPLITS = {"test": 12, "train": 6}


def main():
    root = HERE / "dummy_data"
    if root.exists():
        shutil.rmtree(root)
    for name, source in COPIES.items():
        target = root / f"{name}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FFPP / source, target)
    good = (FFPP / COPIES["Celeb-synthesis/id0_id1_0000"]).read_bytes()
    (root / f"{TRUNCATED}.mp4").write_bytes(good[: len(good) // 2])
    (root / "List_of_testing_videos.txt").write_text(
        "".join(f"{label} {name}.mp4\n" for label, name in TEST_LIST)
    )
    print(f"wrote {root}")


if __name__ == "__main__":
    main()
