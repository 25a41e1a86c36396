"""ffpp: FaceForensics++ face crops with manipulation masks and noise labels.

The training data of Kong et al., "Detect and Locate: Exposing Face
Manipulation by Semantic- and Noise-level Telltales" (IEEE TIFS 2022): for
every sampled frame of a FaceForensics++ (Rossler et al., ICCV 2019) video, the
299 x 299 face crop (dlib box enlarged 1.3x), its manipulation mask cropped in
lockstep, and the noise label of paper Eq. 4-5 (the wavelet-domain Wiener
residual of the stored crop, one channel).

Frame extraction, masks, faces and noise live in the signal layer
(`ffseg.signal.extract`, `faces`, `video`, `noise`); this module only lists
videos, maps them to examples and reports what it could not use. Split
generation (Beam or local), the build report and the input checks are
shared with `celeb_df` in `tfds_ffpp.video_builder`.

Notes for maintainers: `tfds.testing.DatasetBuilderTestCase` replaces this
module's `os` and `open`: files go through `epath`, and the signal layer is
imported inside functions. `video_examples` runs in Beam workers: keep it
module level.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import typing

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from ffseg.constants import CLASS_NAMES, CROP_SIZE, METHODS, NOISE_SIGMA, QUALITIES
from tfds_ffpp import build_report, video_builder

# Index 0 is real, then the methods, as the 5-class heads number them. The
# ids never depend on which methods a build holds.
METHOD_NAMES = CLASS_NAMES
IMAGE_SIZE = CROP_SIZE
# dlib's 68-point layout (ffseg.signal.landmarks.NUM_LANDMARKS, which imports dlib lazily).
NUM_LANDMARKS = 68

# TFDS split name -> file name in FF++'s `splits/` folder.
SPLIT_FILES = {"train": "train.json", "validation": "val.json", "test": "test.json"}

REPORT_FILENAME = build_report.REPORT_FILENAME

_log = logging.getLogger(__name__)

_INSTRUCTIONS = """\
Request FaceForensics++ at https://github.com/ondyari/FaceForensics, download
the c23 and/or c40 videos of the original sequences and of the Deepfakes,
Face2Face, FaceSwap and NeuralTextures manipulations, their masks, and the
official split files, and arrange them as (the layout of the FF++ download
script, plus `splits/` from the FF++ repository's dataset/splits folder):

  <manual_dir>/
    original_sequences/youtube/c23/videos/000.mp4 ... 999.mp4
    original_sequences/youtube/c40/videos/000.mp4 ... 999.mp4
    manipulated_sequences/<Method>/c23/videos/TTT_SSS.mp4   (target_source)
    manipulated_sequences/<Method>/c40/videos/TTT_SSS.mp4
    manipulated_sequences/<Method>/masks/videos/TTT_SSS.mp4
    splits/train.json  splits/val.json  splits/test.json

with <Method> in Deepfakes, Face2Face, FaceSwap, NeuralTextures. Each split
file is a JSON list of [target, source] pairs of three-digit ids; the videos
TTT_SSS and SSS_TTT of every method and the real videos TTT and SSS belong to
that pair's split. Only the quality of the chosen config (c23 or c40) and the
masks are read. Methods may be downloaded one at a time: the build holds the
methods whose <Method>/<quality>/videos folder is present, names the absent
ones in a warning and in build_report.json, and records both lists in the
dataset's metadata. Other folders (FaceShifter, DeepFakeDetection) are named
in the report and left out. Then:

  tfds build tfds_ffpp/ffpp --config=c23 --manual_dir=<manual_dir>

The `sample` config needs none of this: it generates a small FF++-layout tree
from public face photos (ffseg.signal.sample) and takes no --manual_dir. A
tree with your own photos (`ffseg sample DIR --photos YOUR_PHOTOS`) builds
with --config=sample_photos --manual_dir=DIR.
"""

_SAMPLE_PHOTOS_HINT = (
    "ffpp/sample_photos reads a tree written by `ffseg sample DIR --photos YOUR_PHOTOS`"
)


@dataclasses.dataclass
class FfppConfig(tfds.core.BuilderConfig):
    """What a config of `ffpp` writes.

    Attributes:
        quality: "c23" (HQ, x264 QP 23) or "c40" (LQ, QP 40) videos.
        sigma: noise standard deviation of the Wiener denoiser of paper Eq. 5,
            in 0..255 units: 5 for c23, 10 for c40.
        frames_per_video: evenly spaced frames sampled per manipulated video,
            by TFDS split. A video shorter than that gives all its frames.
        real_frames_per_video: the same for real videos; None: as
            `frames_per_video`. Paper Table I samples real videos four times
            as densely, one real video standing against the four fakes of
            its pair.
        methods: FF++ manipulation methods to include (those present).
        sample: build from a tree generated from the built-in photos
            (`ffseg.signal.sample`); no --manual_dir is read.
        manual_dir_holds: what the --manual_dir must hold, for messages.
    """

    quality: str = "c23"
    sigma: float = 5.0
    frames_per_video: typing.Dict[str, int] = dataclasses.field(
        default_factory=lambda: {"train": 32, "validation": 32, "test": 32}
    )
    real_frames_per_video: typing.Optional[typing.Dict[str, int]] = None
    methods: typing.Tuple[str, ...] = METHODS
    sample: bool = False
    manual_dir_holds: str = "FaceForensics++ (original_sequences/, manipulated_sequences/, splits/)"

    def __post_init__(self):
        if self.quality not in QUALITIES:
            raise ValueError(f"quality must be one of {QUALITIES}, got {self.quality!r}")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; FF++ has {METHODS}")
        for name in ("frames_per_video", "real_frames_per_video"):
            counts = getattr(self, name)
            if counts is not None and set(counts) != set(SPLIT_FILES):
                raise ValueError(
                    f"{name} needs counts for {sorted(SPLIT_FILES)}, got {counts}"
                )

    def frames(self, split: str, real: bool) -> int:
        """Frames asked of one video of `split`."""
        counts = self.real_frames_per_video if real else None
        return (counts or self.frames_per_video)[split]


def _frames(train, validation, test):
    return {"train": train, "validation": validation, "test": test}


_QUALITY_NAME = {"c23": "HQ (c23)", "c40": "LQ (c40)"}
# protocol suffix -> (fake frames, real frames per train/validation/test video, description)
_PROTOCOLS = {
    "": (
        _frames(32, 32, 32),
        None,
        "32 evenly spaced frames per video in every split (the usual benchmark protocol).",
    ),
    "_paper": (
        _frames(270, 100, 100),
        _frames(1080, 400, 400),
        "paper Table I: 270 frames per manipulated training video and 100 per validation/"
        "test video; real videos 1080 / 400 / 400, every frame of a shorter one (FF++ real "
        "videos average ~510 frames, so fewer real frames than Table I's).",
    ),
}


def _ffpp_config(quality: str, protocol: str) -> FfppConfig:
    frames, real_frames, description = _PROTOCOLS[protocol]
    sigma = NOISE_SIGMA[quality]
    return FfppConfig(
        name=f"{quality}{protocol}",
        description=f"{_QUALITY_NAME[quality]} videos, sigma {sigma:g}, {description}",
        quality=quality,
        sigma=sigma,
        frames_per_video=frames,
        real_frames_per_video=real_frames,
    )


class Builder(video_builder.VideoBuilder):
    """FaceForensics++ face crops, masks and noise labels (Kong et al., TIFS 2022).

    One example per sampled frame: the face crop (dlib box enlarged 1.3x,
    299 px, PNG), its manipulation mask cropped in lockstep, the noise label
    of paper Eq. 4-5, the real/fake label, the method (0 real, 1-4 the FF++
    methods, whatever a build holds), video name, frame index, crop box and the
    face's 68 landmarks in crop pixels (version 1.2.0).
    Splits follow FF++'s official split files. Configs: `c23`, `c40` (32
    frames per video), `c23_paper`, `c40_paper` (paper Table I counts),
    `sample` (generated from built-in photos, no download) and
    `sample_photos` (a tree of your own from `ffseg sample`).

    The dataset's metadata lists the methods it holds
    (`info.metadata["methods"]`, `["methods_absent"]`); `build_report.json`
    in its folder lists every skipped video, skipped or flagged frame and
    the frames asked for and written per split.

    Example:

    ```python
    import tensorflow_datasets as tfds
    import tfds_ffpp.ffpp  # registers `ffpp`

    builder = tfds.builder("ffpp/sample", data_dir="/tmp/tfds")
    builder.download_and_prepare()  # no download: generated from built-in photos
    print(builder.info.metadata["methods"])
    for example in tfds.as_numpy(builder.as_dataset(split="train").take(1)):
        print(example["image"].shape, example["mask"].shape, example["noise"].dtype)
    # ['Deepfakes', 'Face2Face', 'FaceSwap', 'NeuralTextures']
    # (299, 299, 3) (299, 299, 1) float16
    ```

    On the command line, FF++ with Beam over two local worker processes:

    ```
    tfds build tfds_ffpp/ffpp --config=c23 --manual_dir=/data/FaceForensics++ \\
      --beam_pipeline_options="runner=FnApiRunner,direct_num_workers=2,direct_running_mode=multi_processing"
    ```
    """

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: PNG faces and masks, float16 noise labels, "
        "build_report.json of skipped videos and frames.",
        "1.1.0": "Partial downloads: the methods present are built, metadata lists them "
        "(methods, methods_absent); paper configs sample real videos at 1080 / 400 / 400 "
        "frames (Table I); the report shows requested and written frames per split; "
        "config sample_photos for trees of your own; the input tree's fingerprint is "
        "recorded and a changed tree is never silently reused.",
        "1.2.0": "landmarks: dlib's 68 facial landmarks of every face, in crop coordinates "
        "(the pseudo-fake generator's input). Builds of 1.1.0 still load "
        "(ffseg.data.pipeline.ensure_built reads them from their folder).",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        *(_ffpp_config(quality, protocol) for protocol in _PROTOCOLS for quality in QUALITIES),
        FfppConfig(
            name="sample",
            description="A few short videos generated from public face photos in the FF++ "
            "layout (ffseg.signal.sample), c23, sigma 5, 4 frames per video: no download, "
            "no --manual_dir.",
            quality="c23",
            sigma=5.0,
            frames_per_video=_frames(4, 4, 4),
            sample=True,
        ),
        FfppConfig(
            name="sample_photos",
            description="Your own sample tree (`ffseg sample DIR --photos YOUR_PHOTOS`) in "
            "--manual_dir, built like `sample`: c23, sigma 5, 4 frames per video.",
            quality="c23",
            sigma=5.0,
            frames_per_video=_frames(4, 4, 4),
            manual_dir_holds="a tree written by `ffseg sample DIR --photos YOUR_PHOTOS`",
        ),
    ]
    DEFAULT_CONFIG_NAME = "c23"

    def _info(self) -> tfds.core.DatasetInfo:
        size = (IMAGE_SIZE, IMAGE_SIZE)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    # Lossless: a JPEG re-encode would add its own compression
                    # traces on top of c23/c40 and the stored noise label
                    # would no longer be the residual of the stored image.
                    "image": tfds.features.Image(
                        shape=size + (3,),
                        encoding_format="png",
                        doc="Face crop: dlib box enlarged 1.3x, square, resized to 299.",
                    ),
                    "mask": tfds.features.Image(
                        shape=size + (1,),
                        encoding_format="png",
                        doc="Manipulated pixels (1) of the crop; all 0 for real videos.",
                    ),
                    # float16 raw bytes: ~1e-3 absolute error at |n| < 45,
                    # far below what the L1 loss resolves (see README.md).
                    "noise": tfds.features.Tensor(
                        shape=size + (1,),
                        dtype=np.float16,
                        encoding=tfds.features.Encoding.BYTES,
                        doc="Noise label (paper Eq. 4-5) of the stored image, "
                        "PRNU-weighted to one channel, in 0..255 units.",
                    ),
                    "label": tfds.features.ClassLabel(names=["real", "fake"]),
                    "method": tfds.features.ClassLabel(names=list(METHOD_NAMES)),
                    "video": tfds.features.Text(
                        doc='"<Method>/TTT_SSS" or "real/NNN".'
                    ),
                    "frame": tfds.features.Scalar(
                        dtype=np.int32, doc="Frame index in the video."
                    ),
                    "box": tfds.features.Tensor(
                        shape=(4,),
                        dtype=np.int32,
                        doc="Crop box (x0, y0, x1, y1) in frame pixels.",
                    ),
                    "landmarks": tfds.features.Tensor(
                        shape=(NUM_LANDMARKS, 2),
                        dtype=np.float32,
                        doc="dlib's 68 facial landmarks (iBUG 300-W order), (x, y) in crop "
                        "pixels, found on the stored crop (ffseg.signal.landmarks."
                        "crop_landmarks).",
                    ),
                }
            ),
            supervised_keys=None,
            homepage="https://github.com/ondyari/FaceForensics",
            metadata=video_builder.BuildMetadata(),
        )

    # === The tree and its videos ===

    def _check_manual_dir(self, manual_dir) -> None:
        if self.builder_config.sample and manual_dir is not None:
            raise video_builder.ManualDirError(
                manual_dir,
                "ffpp/sample is generated from the built-in photos and reads no "
                f"--manual_dir; {_SAMPLE_PHOTOS_HINT}: build it with "
                f"--config=sample_photos --manual_dir={manual_dir}",
            )
        super()._check_manual_dir(manual_dir)

    def _manual_dir_hint(self) -> str:
        return f"ffpp/{self.builder_config.name} expects {self.builder_config.manual_dir_holds}"

    def _manual_root(self, dl_manager) -> epath.Path:
        """The FF++ root: the user's manual_dir, or a generated sample tree."""
        if self.builder_config.sample:
            return _sample_root(dl_manager.download_dir)
        try:
            return epath.Path(dl_manager.manual_dir)
        except AssertionError as error:
            # TFDS' message repeats the instructions: keep its first sentence.
            problem = str(error).split(". ")[0]
            raise FileNotFoundError(
                f"ffpp/{self.builder_config.name} needs --manual_dir ({problem}): it "
                f"expects {self.builder_config.manual_dir_holds}. Expected layout:\n"
                f"{_INSTRUCTIONS}"
            ) from None

    def _videos_by_split(self, root):
        config = self.builder_config
        folders = check_layout(root, config.quality, config.methods)
        self._method_folders = folders
        self.info.metadata["methods"] = list(folders.present)
        self.info.metadata["methods_absent"] = list(folders.absent)
        if folders.absent or folders.unknown:
            _log.warning(
                "ffpp/%s: building %d of %d methods (%s)%s%s",
                config.name,
                len(folders.present),
                len(config.methods),
                ", ".join(folders.present),
                "".join(f"; absent: {m} ({why})" for m, why in folders.absent.items()),
                "".join(f"; left out: {f} ({why})" for f, why in folders.unknown.items()),
            )

        split_videos = {}
        for split, filename in SPLIT_FILES.items():
            pairs = read_split_file(root / "splits" / filename)
            split_videos[split] = split_video_names(pairs, folders.present)
        check_disjoint(split_videos)

        result = {}
        for split, names in split_videos.items():
            videos, not_found = [], []
            for name in names:
                video = video_entry(root, name, config.quality)
                files = {"video": video["path"], "mask video": video["mask_path"]}
                missing = [(w, p) for w, p in files.items() if p and not epath.Path(p).exists()]
                if missing:
                    what, path = missing[0]
                    entry = {"split": split, "video": name, "reason": f"{what} not found: {path}"}
                    not_found.append(entry)
                    continue
                video["frames"] = config.frames(split, real=video["label"] == "real")
                videos.append(video)
            if not videos:
                # A split without a single video fails TFDS' writer only after
                # every other split was built; say so now, and why.
                raise FileNotFoundError(
                    f"none of the {len(names)} videos that {root / 'splits' / SPLIT_FILES[split]} "
                    f"lists for the {split} split was found, e.g. {not_found[0]['reason']}; "
                    "check that its ids match the file names. Layout of the manual_dir:\n"
                    f"{_INSTRUCTIONS}"
                )
            for entry in not_found:
                self._report.add("skipped_videos", entry)
            _log.info("ffpp: %s: %d of %d listed videos found", split, len(videos), len(names))
            result[split] = videos
        return result

    def _input_paths(self, root):
        root = epath.Path(root)
        quality = self.builder_config.quality
        paths = [
            root / "splits",
            root / "original_sequences" / "youtube" / quality / "videos",
            root / "sample.json",  # a generated tree's provenance (photos, seed)
        ]
        for method in self.builder_config.methods:
            base = root / "manipulated_sequences" / method
            paths += [base / quality / "videos", base / "masks" / "videos"]
        return paths

    # === Examples ===

    def _examples_function(self):
        return video_examples

    def _examples_kwargs(self, split):
        from ffseg.signal import faces, landmarks

        config = self.builder_config
        return dict(
            frames=config.frames(split, real=False),
            real_frames=config.frames(split, real=True),
            sigma=config.sigma,
            # One detector per worker: it is pickled without dlib's model and
            # creates it on first use.
            detector=faces.FaceDetector(),
            landmark_detector=landmarks.LandmarkDetector(),
        )

    def _report_header(self):
        folders = getattr(self, "_method_folders", None)
        if folders is None:
            return {}
        return {
            "methods": list(folders.present),
            "methods_absent": [
                {"method": method, "reason": reason} for method, reason in folders.absent.items()
            ],
            "methods_unknown": [
                {"folder": folder, "reason": reason} for folder, reason in folders.unknown.items()
            ],
        }


# === Videos and splits (pure functions, tested on the official split files) ===


def read_split_file(path) -> typing.List[typing.Tuple[str, str]]:
    """[target, source] pairs of an FF++ split file (splits/{train,val,test}.json).

    Ids are FF++'s three-digit video numbers: written as JSON numbers
    ([[71, 54]]) or without their leading zeros they are padded ("071"), as
    the file names are. Anything else fails, naming the file and the entry.
    """
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"FF++ split file not found: {path}. Expected a JSON list of "
            '[target, source] pairs such as [["071", "054"], ...] (FF++ repository, '
            "dataset/splits/)."
        )
    expected = 'expected a JSON list of [target, source] id pairs such as [["071", "054"], ...]'
    try:
        # utf-8-sig: a byte-order mark, as some Windows editors write, is not an error.
        pairs = json.loads(path.read_bytes().decode("utf-8-sig"))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not valid JSON ({error}); {expected}") from None
    if not isinstance(pairs, list):
        raise ValueError(f"{path}: holds a JSON {type(pairs).__name__}; {expected}")
    if not pairs:
        raise ValueError(f"{path}: lists no pairs; {expected}")
    result = []
    for number, pair in enumerate(pairs):
        ids = _pair_ids(pair)
        if ids is None:
            raise ValueError(
                f"{path}: entry {number} is {json.dumps(pair)}, not a [target, source] pair "
                f"of video ids; {expected}"
            )
        if ids[0] == ids[1]:
            raise ValueError(f"{path}: entry {number} pairs video {ids[0]} with itself")
        result.append(ids)
    return result


def _pair_ids(pair) -> typing.Optional[typing.Tuple[str, str]]:
    """("071", "054") from ["071", "054"], [71, 54] or ["71", "54"]; None if not a pair."""
    if not isinstance(pair, list) or len(pair) != 2:
        return None
    ids = []
    for value in pair:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return None
        text = str(value).strip()
        if not re.fullmatch(r"[0-9]+", text):
            return None
        ids.append(text.zfill(3))
    return ids[0], ids[1]


def split_video_names(pairs, methods=METHODS) -> typing.List[str]:
    """Video names of a split, FF++'s rule: a_b and b_a of every method, real a and b.

    Names are "real/NNN" and "<Method>/TTT_SSS", in a stable order.
    """
    names = []
    for target, source in pairs:
        for real in (target, source):
            names.append(f"real/{real}")
        for method in methods:
            names.append(f"{method}/{target}_{source}")
            names.append(f"{method}/{source}_{target}")
    return list(dict.fromkeys(names))  # a real id in two pairs appears once


def check_disjoint(split_videos: typing.Mapping[str, typing.Sequence[str]]) -> None:
    """Raises if a video is listed in two splits (train/test leakage)."""
    seen = {}
    for split, names in split_videos.items():
        for name in names:
            if name in seen and seen[name] != split:
                raise ValueError(
                    f"video {name} is in both the {seen[name]} and the {split} split: "
                    "fix the split files, a video must belong to exactly one split"
                )
            seen[name] = split


@dataclasses.dataclass(frozen=True)
class MethodFolders:
    """Which FF++ methods a tree holds at one quality.

    Attributes:
        present: methods with videos at the quality (and their masks), in
            FF++'s order.
        absent: method -> why it is not built (its folder or its videos at
            the quality are missing: a partial download).
        unknown: folder of manipulated_sequences/ that is not one of the
            methods -> why it is left out.
    """

    present: typing.Tuple[str, ...]
    absent: typing.Dict[str, str]
    unknown: typing.Dict[str, str]


def check_layout(root, quality: str, methods=METHODS) -> MethodFolders:
    """The methods a tree holds; fails early, naming a missing folder the build needs.

    The split files, the real videos and, for every method whose videos are
    present, its mask videos must be there. A method may be absent (FF++'s
    download script fetches one at a time): it is returned in `absent`.
    Folders of other methods (FaceShifter, which has no masks,
    DeepFakeDetection) are returned in `unknown`.
    """
    root = epath.Path(root)
    expected = {
        root / "splits": "the official split files train.json, val.json, test.json",
        root / "original_sequences" / "youtube" / quality / "videos": (
            f"the real FF++ videos NNN.mp4 at quality {quality}"
        ),
    }
    for folder, what in expected.items():
        if not folder.is_dir():
            raise FileNotFoundError(
                f"FF++ folder not found: {folder} (expected {what}). "
                f"Layout of the manual_dir:\n{_INSTRUCTIONS}"
            )
    manipulated = root / "manipulated_sequences"
    present, absent = [], {}
    for method in methods:
        base = manipulated / method
        videos = base / quality / "videos"
        if not base.is_dir():
            absent[method] = f"no folder {base}"
            continue
        if not videos.is_dir():
            absent[method] = f"no {quality} videos: {videos} not found"
            continue
        masks = base / "masks" / "videos"
        if not masks.is_dir():
            # Videos without masks cannot be labelled: a download to finish.
            raise FileNotFoundError(
                f"FF++ folder not found: {masks} (expected the {method} mask videos "
                f"TTT_SSS.mp4 for the {method} videos in {videos}). "
                f"Layout of the manual_dir:\n{_INSTRUCTIONS}"
            )
        present.append(method)
    if not present:
        raise FileNotFoundError(
            f"no FF++ manipulation method at quality {quality} in {manipulated}: expected at "
            f"least one of {', '.join(f'{m}/{quality}/videos' for m in methods)}. "
            f"Layout of the manual_dir:\n{_INSTRUCTIONS}"
        )
    unknown = {}
    if manipulated.is_dir():
        for folder in sorted(manipulated.iterdir()):
            if folder.is_dir() and folder.name not in METHODS:
                no_masks = "" if (folder / "masks").is_dir() else "; it has no masks"
                unknown[str(folder)] = (
                    f"not one of the methods this dataset labels ({', '.join(METHODS)})"
                    f"{no_masks}"
                )
    return MethodFolders(present=tuple(present), absent=absent, unknown=unknown)


def video_entry(root, name: str, quality: str) -> typing.Dict[str, typing.Any]:
    """Where the files of video `name` ("real/NNN" or "<Method>/TTT_SSS") are."""
    root = epath.Path(root)
    method, video_id = name.split("/")
    if method == "real":
        path = root / "original_sequences" / "youtube" / quality / "videos" / f"{video_id}.mp4"
        mask_path = None
    else:
        base = root / "manipulated_sequences" / method
        path = base / quality / "videos" / f"{video_id}.mp4"
        mask_path = base / "masks" / "videos" / f"{video_id}.mp4"
    return {
        "name": name,
        "method": method,
        "label": "real" if method == "real" else "fake",
        "path": str(path),
        "mask_path": None if mask_path is None else str(mask_path),
    }


# === Per-video work (module level: it runs in Beam workers) ===


def video_examples(video, *, split, frames, real_frames, sigma, detector, report,
                   landmark_detector=None):
    """(key, example) pairs of one video; problems go to `report(kind, entry)`.

    Bad input never raises out of here: an unreadable, corrupt, empty or
    face-less video, or a missing or unreadable mask video, is reported as a
    skipped video (with the file at fault); frames past the end of a short
    mask video as skipped frames; frames whose face the detector missed (and
    whose box the extractor took from elsewhere), and frames of a fake whose
    mask is empty, full, outside the face or from a longer mask video
    (`iter_extract_video`'s flags), as flagged frames, which are kept.
    The landmarks are found on each stored crop (`crop_landmarks`).
    """
    from ffseg.signal import extract, faces, landmarks
    from ffseg.signal import video as video_lib

    name, is_real = video["name"], video["mask_path"] is None

    def skip_video(reason, path=None):
        entry = {"split": split, "video": name, "reason": reason}
        if path is not None:
            entry["file"] = str(path)
        report("skipped_videos", entry)

    try:
        # Raises before it returns an example: a video that fails gives none.
        # The examples (with their noise labels) are then made one at a time.
        examples, skipped = extract.iter_extract_video(
            video["path"],
            video["mask_path"],
            num_frames=real_frames if is_real else frames,
            size=IMAGE_SIZE,
            sigma=sigma,
            detector=detector,
        )
    except video_lib.VideoError as error:
        which = "mask video" if error.path == video["mask_path"] else "video"
        skip_video(f"{which}: {error.reason}", error.path)
        return
    except faces.NoFaceError as error:
        skip_video(f"no face: {error.reason}", error.path)
        return
    except Exception as error:  # pylint: disable=broad-except
        # A file that breaks the decoder in an unforeseen way must not stop a
        # build of thousands of videos; the report says it was unexpected.
        skip_video(f"unexpected {type(error).__name__}: {error}", video["path"])
        return

    for skip in skipped:
        report(
            "skipped_frames",
            {"split": split, "video": name, "frame": int(skip["frame"]), "reason": skip["reason"]},
        )
    method = video["method"]
    for example in examples:
        frame = int(example["frame"])
        reasons = list(example.get("flags", ()))
        if not example["detected"]:
            reasons.insert(0, "no face detected in this frame; crop box taken from other frames")
        for reason in reasons:
            entry = {"split": split, "video": name, "frame": frame, "reason": reason}
            report("flagged_frames", entry)
        noise = np.asarray(example["noise"], np.float32)
        yield f"{name}/{frame:04d}", {
            "image": example["image"],
            "mask": np.asarray(example["mask"], np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 1),
            "noise": noise.reshape(IMAGE_SIZE, IMAGE_SIZE, 1).astype(np.float16),
            "label": "real" if is_real else "fake",
            "method": method,
            "video": name,
            "frame": frame,
            "box": np.asarray(example["box"], np.int32),
            "landmarks": landmarks.crop_landmarks(
                example["image"], face_detector=detector, landmark_detector=landmark_detector
            )[0],
        }


# === The sample tree ===


def _sample_root(download_dir) -> epath.Path:
    """A generated FF++-layout tree under the download folder (made once, reused)."""
    from ffseg.signal import sample

    root = epath.Path(download_dir) / "ffpp_sample"
    if (root / "sample.json").exists():
        return root
    partial = epath.Path(download_dir) / "ffpp_sample.incomplete"
    if partial.exists():
        partial.rmtree()
    _log.info("ffpp/sample: generating a sample FF++ tree in %s", root)
    sample.make_sample_ffpp(partial)
    if root.exists():
        root.rmtree()
    partial.rename(root)
    return root
