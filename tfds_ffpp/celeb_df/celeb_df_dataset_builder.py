"""celeb_df: Celeb-DF (v2) face crops for cross-dataset evaluation (paper Table IV).

Kong et al. train on FaceForensics++ and test on Celeb-DF (Li et al., CVPR
2020). Frames and faces are extracted exactly as for `ffpp` (evenly spaced
frames, dlib box enlarged 1.3x, 299x299 crops, `ffseg.extract`), so a model
trained on `ffpp` sees the same preprocessing here. Celeb-DF ships no
manipulation masks: examples carry no `mask` (and no `noise` label, which only
training needs), and the evaluation reports detection figures only.

Splits: `test` is the official `List_of_testing_videos.txt` (518 videos);
`train` is every other video, for users who fine-tune.

Notes for maintainers: as in `ffpp`, `tfds.testing.DatasetBuilderTestCase`
replaces this module's `os` and `open`, so files go through `epath` and the
signal layer is imported inside functions. Split generation (Beam or local),
the build report and the input checks are shared with `ffpp` in
`tfds_ffpp.video_builder`.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from ffseg.constants import CROP_SIZE
from tfds_ffpp import video_builder

IMAGE_SIZE = CROP_SIZE
FOLDERS = {"Celeb-real": "real", "YouTube-real": "real", "Celeb-synthesis": "fake"}
TEST_LIST = "List_of_testing_videos.txt"

_INSTRUCTIONS = """\
Request Celeb-DF (v2) from its authors (https://github.com/yuezunli/celeb-deepfakeforensics)
and unpack it so that the manual_dir holds, as published:

  <manual_dir>/
    Celeb-real/id0_0000.mp4 ...               (real, celebrity interviews)
    YouTube-real/00000.mp4 ...                (real, YouTube)
    Celeb-synthesis/id0_id1_0000.mp4 ...      (fake)
    List_of_testing_videos.txt                (lines "<1 real | 0 fake> <folder>/<file>.mp4")

Then:

  tfds build tfds_ffpp/celeb_df --manual_dir=<manual_dir>
"""


@dataclasses.dataclass
class CelebDfConfig(tfds.core.BuilderConfig):
    """Attributes:
    frames_per_video: evenly spaced frames per video (32: the FF++ `c23`/`c40`
        protocol; the paper reports frame-level AUC).
    """

    frames_per_video: int = 32


class Builder(video_builder.VideoBuilder):
    """Celeb-DF (v2) face crops, labels and boxes (no masks), for paper Table IV.

    Example:

    ```python
    import tensorflow_datasets as tfds
    import tfds_ffpp.celeb_df  # registers `celeb_df`

    builder = tfds.builder("celeb_df", data_dir="/data/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/Celeb-DF-v2")
    )
    test = builder.as_dataset(split="test")
    ```
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: 32 frames per video, PNG faces, build_report.json."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        CelebDfConfig(
            name="frames32", description="32 evenly spaced frames per video.", frames_per_video=32
        ),
    ]
    DEFAULT_CONFIG_NAME = "frames32"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(
                        shape=(IMAGE_SIZE, IMAGE_SIZE, 3),
                        encoding_format="png",
                        doc="Face crop: dlib box enlarged 1.3x, square, resized to 299 (as ffpp).",
                    ),
                    "label": tfds.features.ClassLabel(names=["real", "fake"]),
                    "video": tfds.features.Text(
                        doc='"<folder>/<file stem>", e.g. "Celeb-synthesis/id0_id1_0000".'
                    ),
                    "frame": tfds.features.Scalar(dtype=np.int32, doc="Frame index in the video."),
                    "box": tfds.features.Tensor(
                        shape=(4,), dtype=np.int32, doc="Crop box (x0, y0, x1, y1)."
                    ),
                }
            ),
            supervised_keys=None,
            homepage="https://github.com/yuezunli/celeb-deepfakeforensics",
            metadata=video_builder.BuildMetadata(),
        )

    def _manual_dir_hint(self) -> str:
        return "celeb_df expects Celeb-DF (v2): " + ", ".join(list(FOLDERS) + [TEST_LIST])

    def _manual_root(self, dl_manager) -> epath.Path:
        try:
            return epath.Path(dl_manager.manual_dir)
        except AssertionError as error:
            raise FileNotFoundError(
                f"celeb_df needs Celeb-DF (v2) in --manual_dir ({str(error).split('. ')[0]}). "
                f"Expected layout:\n{_INSTRUCTIONS}"
            ) from None

    def _videos_by_split(self, root):
        check_layout(root)
        frames = self.builder_config.frames_per_video
        test_videos = read_test_list(root / TEST_LIST)
        splits = {"test": [], "train": []}
        listed = set()
        for name, label in test_videos:
            listed.add(name)
            path = root / f"{name}.mp4"
            if not path.exists():
                self._report.add(
                    "skipped_videos",
                    {"split": "test", "video": name, "reason": f"video not found: {path}"},
                )
                continue
            video = {"name": name, "path": str(path), "label": label, "frames": frames}
            splits["test"].append(video)
        for folder, label in FOLDERS.items():
            for path in sorted((root / folder).glob("*.mp4")):
                name = f"{folder}/{path.stem}"
                if name not in listed:
                    splits["train"].append(
                        {"name": name, "path": str(path), "label": label, "frames": frames}
                    )
        return splits

    def _input_paths(self, root):
        return [epath.Path(root) / name for name in list(FOLDERS) + [TEST_LIST]]

    def _examples_function(self):
        return video_examples

    def _examples_kwargs(self, split):
        from ffseg.signal import faces

        return dict(frames=self.builder_config.frames_per_video, detector=faces.FaceDetector())


def check_layout(root) -> None:
    root = epath.Path(root)
    for folder in list(FOLDERS) + [TEST_LIST]:
        if not (root / folder).exists():
            raise FileNotFoundError(
                f"Celeb-DF path not found: {root / folder}. "
                f"Layout of the manual_dir:\n{_INSTRUCTIONS}"
            )


def read_test_list(path) -> typing.List[typing.Tuple[str, str]]:
    """(name, "real" | "fake") of each line "<1|0> <folder>/<file>.mp4" (1 = real).

    The label column is checked against the folder, which is the ground truth
    of the release: a disagreement is a corrupt list and fails loudly.
    """
    path = epath.Path(path)
    videos = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1") or not parts[1].endswith(".mp4"):
            raise ValueError(f"{path}:{number}: expected '<1|0> <folder>/<file>.mp4', got {line!r}")
        folder = parts[1].split("/")[0]
        if folder not in FOLDERS:
            raise ValueError(
                f"{path}:{number}: unknown folder {folder!r}; expected one of {sorted(FOLDERS)}"
            )
        label = "real" if parts[0] == "1" else "fake"
        if label != FOLDERS[folder]:
            raise ValueError(
                f"{path}:{number}: label {parts[0]} ({label}) contradicts folder {folder}"
            )
        videos.append((parts[1][: -len(".mp4")], label))
    return videos


def video_examples(video, *, split, frames, detector, report):
    """(key, example) pairs of one video; problems go to `report(kind, entry)`."""
    from ffseg.signal import extract, faces
    from ffseg.signal import video as video_lib

    name = video["name"]
    try:
        # No masks in Celeb-DF: the extractor's all-zero mask and its noise
        # label are dropped below, never stored as labels. Raises before it
        # returns an example, so a video that fails gives none; the examples
        # are then made one at a time.
        examples, skipped = extract.iter_extract_video(
            video["path"], None, num_frames=frames, size=IMAGE_SIZE, sigma=5.0, detector=detector
        )
    except (video_lib.VideoError, faces.NoFaceError) as error:
        kind = "no face" if isinstance(error, faces.NoFaceError) else "video"
        report(
            "skipped_videos", {"split": split, "video": name, "reason": f"{kind}: {error.reason}"}
        )
        return
    except Exception as error:  # pylint: disable=broad-except
        report(
            "skipped_videos",
            {
                "split": split,
                "video": name,
                "reason": f"unexpected {type(error).__name__}: {error}",
            },
        )
        return
    for skip in skipped:
        report(
            "skipped_frames",
            {"split": split, "video": name, "frame": int(skip["frame"]), "reason": skip["reason"]},
        )
    for example in examples:
        frame = int(example["frame"])
        if not example["detected"]:
            report(
                "flagged_frames",
                {
                    "split": split,
                    "video": name,
                    "frame": frame,
                    "reason": "no face detected in this frame; crop box taken from other frames",
                },
            )
        yield (
            f"{name}/{frame:04d}",
            {
                "image": example["image"],
                "label": video["label"],
                "video": name,
                "frame": frame,
                "box": np.asarray(example["box"], np.int32),
            },
        )
