"""Tests of the ffpp builder over dummy_data/ (made by make_dummy_data.py).

`DatasetBuilderTestCase` classes build each config over the tiny FF++ tree
and check splits, features and reloading; the pytest tests below build the
dataset once more into a temporary folder and check the values: masks,
noise labels against paper Eq. 4-5 recomputed from the stored image, the
split rule on FF++'s official split files, and the build report.

Example counts of dummy_data (3 frames per video, every config samples them
all; each split lists 2 real + 8 fake videos):
  train      9 usable videos x 3 - 2 frames past the 1-frame mask = 25
             (Deepfakes/000_001 is truncated)
  validation 8 usable videos x 3 = 24
             (Deepfakes/002_003 is 0 bytes, FaceSwap/003_002 has no mask video)
  test       8 usable videos x 3 = 24
             (NeuralTextures/004_005 shows no face, FaceSwap/005_004 is missing)
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

from ffseg.errors import FileError
from tfds_ffpp import build_report, video_builder
from tfds_ffpp.ffpp import ffpp_dataset_builder, make_dummy_data

DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"
REPO_ROOT = epath.Path(__file__).parent.parent.parent
DUMMY_SPLITS = {"train": 25, "validation": 24, "test": 24}


class FfppC23Test(tfds.testing.DatasetBuilderTestCase):
    """c23 over dummy_data."""

    DATASET_CLASS = ffpp_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["c23"]
    SPLITS = DUMMY_SPLITS


class FfppC40Test(tfds.testing.DatasetBuilderTestCase):
    """c40 over dummy_data."""

    DATASET_CLASS = ffpp_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["c40"]
    SPLITS = DUMMY_SPLITS


@pytest.mark.slow
class FfppPaperTest(tfds.testing.DatasetBuilderTestCase):
    """The paper-protocol configs share the dummy data (all 3 frames each)."""

    DATASET_CLASS = ffpp_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = ["c23_paper", "c40_paper"]
    SPLITS = DUMMY_SPLITS


# === Split rule on FF++'s official split files ===


def _official_split_videos():
    folder = DUMMY_DATA / "official_splits"
    return {
        split: ffpp_dataset_builder.split_video_names(
            ffpp_dataset_builder.read_split_file(folder / filename)
        )
        for split, filename in ffpp_dataset_builder.SPLIT_FILES.items()
    }


def test_official_splits_put_every_video_in_exactly_one_split():
    videos = _official_split_videos()
    ffpp_dataset_builder.check_disjoint(videos)
    sets = {split: set(names) for split, names in videos.items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    # FF++: 720 / 140 / 140 real videos and 4 x as many fakes of each method pair.
    reals = {split: {n for n in names if n.startswith("real/")} for split, names in sets.items()}
    assert {split: len(r) for split, r in reals.items()} == {
        "train": 720, "validation": 140, "test": 140,
    }
    assert set().union(*reals.values()) == {f"real/{i:03d}" for i in range(1000)}
    assert {split: len(names) - len(reals[split]) for split, names in sets.items()} == {
        "train": 2880, "validation": 560, "test": 560,
    }


def test_split_rule_takes_both_directions_and_both_reals():
    names = ffpp_dataset_builder.split_video_names([("071", "054")], methods=("FaceSwap",))
    assert names == ["real/071", "real/054", "FaceSwap/071_054", "FaceSwap/054_071"]


def test_split_file_ids_may_be_numbers_or_lack_leading_zeros(tmp_path):
    path = tmp_path / "train.json"
    path.write_text("[[71, 54], [\"7\", \" 012 \"]]")
    assert ffpp_dataset_builder.read_split_file(path) == [("071", "054"), ("007", "012")]
    # A byte-order mark (Windows editors) is not an error either.
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([["071", "054"]]).encode())
    assert ffpp_dataset_builder.read_split_file(path) == [("071", "054")]


@pytest.mark.parametrize(
    "text, problem",
    [
        ('[["071", "054"],]', "not valid JSON .*line 1 column 17"),
        ('[["071", "054", "003"]]', r'entry 0 is \["071", "054", "003"\], not a \[target'),
        ('[["071", "054"], ["009"]]', "entry 1 is"),
        ('[["071", null]]', "entry 0 is"),
        ('[[71.0, 54.0]]', "entry 0 is"),
        ('[["071", "071"]]', "entry 0 pairs video 071 with itself"),
        ("[]", "lists no pairs"),
        ('{"train": [["071", "054"]]}', "holds a JSON dict"),
    ],
)
def test_bad_split_files_name_the_file_and_the_entry(tmp_path, text, problem):
    path = tmp_path / "val.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: {problem}"):
        ffpp_dataset_builder.read_split_file(path)


def test_integer_ids_in_split_files_build_like_strings(tmp_path):
    root = _copy_dummy(tmp_path)
    # Junk beside the videos is not listed by any split file, so never read.
    for folder in ("original_sequences/youtube/c23/videos",
                   "manipulated_sequences/Deepfakes/masks/videos"):
        (root / folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        (root / folder / "readme.txt").write_text("downloaded with the FF++ script")
    test_pairs = json.loads((root / "splits" / "test.json").read_text())
    numbers = [[int(a), int(b)] for a, b in test_pairs]
    (root / "splits" / "test.json").write_text(json.dumps(numbers))
    builder = ffpp_dataset_builder.Builder(data_dir=str(tmp_path / "data"), config="c23")
    dl_manager = tfds.download.DownloadManager(
        download_dir=str(tmp_path / "dl"), manual_dir=str(root),
        manual_dir_instructions=builder.MANUAL_DOWNLOAD_INSTRUCTIONS,
    )
    builder._report = build_report.BuildReport("ffpp")
    generators = builder._split_generators(dl_manager)
    assert set(generators) == {"train", "validation", "test"}
    # The test split's videos were found; only the one FF++ tree lacks is reported.
    missing = [e["video"] for e in builder._report.entries["skipped_videos"]]
    damage = make_dummy_data.DAMAGE
    assert missing == [damage["missing_mask"], damage["missing_video"]]


def test_split_whose_videos_are_all_missing_fails_before_building(tmp_path):
    root = _copy_dummy(tmp_path)
    (root / "splits" / "test.json").write_text(json.dumps([["104", "105"]]))
    with pytest.raises(FileNotFoundError, match="none of the 10 videos that .*test.json lists"):
        _build(tmp_path / "data", root)


def test_split_without_a_usable_video_fails_and_keeps_the_report(tmp_path):
    root = _copy_dummy(tmp_path)
    # Every video of the train split (pair 000/001, built first) is damaged.
    train = {"000", "001"}
    for path in pathlib.Path(root).rglob("*.mp4"):
        if "masks" not in path.parts and set(path.stem.split("_")) <= train:
            path.write_bytes(b"not a video" * 10)
    with pytest.raises(ValueError, match="the train split has no usable example: all 10") as info:
        _build(tmp_path / "data", root)
    version = ffpp_dataset_builder.Builder.VERSION
    saved = tmp_path / "data" / "ffpp" / "c23" / f"build_report-{version}-failed.json"
    assert any(str(saved) in note for note in info.value.__notes__)
    report = json.loads(saved.read_text())
    skipped = [e for e in report["skipped_videos"] if e["split"] == "train"]
    assert len(skipped) == 10
    for entry in skipped:
        assert "cannot be opened as a video" in entry["reason"]
        entry_files = ffpp_dataset_builder.video_entry(root, entry["video"], "c23")
        assert entry["file"] == entry_files["path"]


def _examples_and_report(root, name):
    from ffseg.signal import faces

    entries = []
    examples = list(
        ffpp_dataset_builder.video_examples(
            ffpp_dataset_builder.video_entry(root, name, "c23"), split="train", frames=3,
            real_frames=3, sigma=5.0, detector=faces.FaceDetector(),
            report=lambda kind, entry: entries.append((kind, entry)),
        )
    )
    return examples, entries


def test_manual_dir_with_spaces_and_non_ascii_characters(tmp_path):
    import shutil

    root = epath.Path(tmp_path / "données FF++ 中文")
    shutil.copytree(DUMMY_DATA, root)
    examples, entries = _examples_and_report(root, "FaceSwap/000_001")
    assert len(examples) == 3 and entries == []
    _, entries = _examples_and_report(root, make_dummy_data.DAMAGE["corrupt"])
    ((kind, entry),) = entries
    assert kind == "skipped_videos" and entry["file"].startswith(str(root))


def test_empty_masks_of_a_fake_are_reported_never_used_silently(tmp_path):
    from ffseg.signal import video as video_lib

    root = _copy_dummy(tmp_path)
    # A mask video that is black throughout: the video is skipped, naming the mask.
    name = "Deepfakes/001_000"
    mask = ffpp_dataset_builder.video_entry(root, name, "c23")["mask_path"]
    frames = [frame for _, frame in video_lib.iter_frames(mask)]
    video_lib.write_video(mask, [np.zeros_like(f) for f in frames], qp=23)
    examples, entries = _examples_and_report(root, name)
    assert examples == []
    ((kind, entry),) = entries
    assert kind == "skipped_videos" and entry["file"] == mask
    assert entry["reason"].startswith("mask video: mask video is empty (all black) in all 3")
    # One black frame in a good mask video: the frame is kept and flagged.
    frames[1] = np.zeros_like(frames[1])
    video_lib.write_video(mask, frames, qp=23)
    examples, entries = _examples_and_report(root, name)
    assert [key for key, _ in examples] == [f"{name}/0000", f"{name}/0001", f"{name}/0002"]
    assert not examples[1][1]["mask"].any() and examples[1][1]["label"] == "fake"
    assert entries == [(
        "flagged_frames",
        {"split": "train", "video": name, "frame": 1,
         "reason": "mask frame is empty (all black) in a manipulated video"},
    )]


def test_overlapping_split_files_are_refused(tmp_path):
    root = _copy_dummy(tmp_path)
    # 000 is in train; listing it in test too would leak it.
    (root / "splits" / "test.json").write_text(json.dumps([["004", "005"], ["000", "004"]]))
    with pytest.raises(ValueError, match="real/000 is in both"):
        _build(tmp_path / "data", root)


# === Missing pieces fail with the path and what was expected ===


def _copy_dummy(tmp_path):
    import shutil

    root = tmp_path / "ffpp"
    shutil.copytree(DUMMY_DATA, root)
    return epath.Path(root)


def _build(data_dir, manual_dir, config="c23", **download_kwargs):
    builder = ffpp_dataset_builder.Builder(data_dir=str(data_dir), config=config)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir), **download_kwargs
        )
    )
    return builder


@pytest.mark.parametrize(
    "remove, expected",
    [
        ("splits/val.json", "split file not found: .*splits/val.json"),
        # A method's videos without its masks cannot be labelled. (A method
        # without its videos is a partial download, built without it: see
        # test_partial_download_builds_the_methods_present.)
        ("manipulated_sequences/NeuralTextures/masks", "NeuralTextures/masks/videos .*mask videos"),
        ("original_sequences", "youtube/c23/videos .*real FF\\+\\+ videos"),
        ("manipulated_sequences", "no FF\\+\\+ manipulation method at quality c23"),
    ],
)
def test_missing_parts_of_the_layout_are_named(tmp_path, remove, expected):
    root = _copy_dummy(tmp_path)
    target = root / remove
    target.unlink() if target.is_file() else target.rmtree()
    with pytest.raises(FileNotFoundError, match=expected):
        _build(tmp_path / "data", root)


def test_no_manual_dir_fails_with_the_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="original_sequences/youtube/c23/videos"):
        _build(tmp_path / "data", None)


# === The built dataset ===


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """c23 over dummy_data, plain Python generation."""
    data_dir = tmp_path_factory.mktemp("data")
    builder = _build(data_dir, DUMMY_DATA)
    examples = {
        split: list(tfds.as_numpy(builder.as_dataset(split=split)))
        for split in ("train", "validation", "test")
    }
    report = json.loads((builder.data_path / ffpp_dataset_builder.REPORT_FILENAME).read_text())
    return builder, examples, report


def test_counts_and_keys(built):
    builder, examples, _ = built
    assert {split: len(e) for split, e in examples.items()} == DUMMY_SPLITS
    seen = {}
    for split, split_examples in examples.items():
        for example in split_examples:
            video = example["video"].decode()
            assert video not in seen or seen[video] == split
            seen[video] = split
    assert sorted({v for v, s in seen.items() if s == "train"}) == sorted(
        set(ffpp_dataset_builder.split_video_names([("000", "001")]))
        - {make_dummy_data.DAMAGE["corrupt"]}
    )


def test_masks_labels_and_boxes(built):
    builder, examples, _ = built
    method_names = builder.info.features["method"].names
    for split_examples in examples.values():
        for example in split_examples:
            video = example["video"].decode()
            method, _ = video.split("/")
            mask = example["mask"]
            assert mask.shape == (299, 299, 1) and mask.dtype == np.uint8
            assert set(np.unique(mask)) <= {0, 1}
            assert method_names[example["method"]] == method
            if method == "real":
                assert example["label"] == 0
                assert not mask.any(), f"{video} frame {example['frame']}: real with a mask"
            else:
                assert example["label"] == 1
                assert mask.any(), f"{video} frame {example['frame']}: fake with an empty mask"
            x0, y0, x1, y1 = example["box"]
            # Square 1.3x box inside the 320x240 frames (faces.face_box).
            assert x1 - x0 == y1 - y0 and 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240


def test_landmarks_lie_on_the_stored_face(built):
    from ffseg.signal.landmarks import REGIONS

    _, examples, _ = built
    for split_examples in examples.values():
        for example in split_examples:
            points = example["landmarks"]
            assert points.shape == (68, 2) and points.dtype == np.float32
            assert (points > -10).all() and (points < 309).all()
            eyes = points[list(REGIONS["right_eye"] + REGIONS["left_eye"])].mean(0)
            mouth = points[list(REGIONS["mouth"])].mean(0)
            # Upright faces: the eyes above the nose tip, the nose tip above the mouth,
            # all near the crop's vertical centre line.
            assert eyes[1] < points[30][1] < mouth[1], example["video"]
            assert abs(points[30][0] - 149) < 60, example["video"]
            # The person's right eye on the image's left.
            right = points[list(REGIONS["right_eye"])].mean(0)
            left = points[list(REGIONS["left_eye"])].mean(0)
            assert right[0] < left[0]


def test_noise_is_the_residual_of_the_stored_image(built):
    from ffseg.signal.noise import noise_residual, to_gray

    builder, examples, _ = built
    sigma = builder.builder_config.sigma
    for example in examples["validation"][:6] + examples["test"][:6]:
        noise = example["noise"]
        assert noise.shape == (299, 299, 1) and noise.dtype == np.float16
        expected = to_gray(noise_residual(example["image"], sigma))
        error = np.abs(noise[..., 0].astype(np.float32) - expected)
        # float16 rounding: half an ulp, 2^-11 of the value (2^-24 subnormal).
        assert np.all(error <= np.abs(expected) * 2.0**-11 + 2.0**-24)
        assert np.abs(expected).mean() > 0.1  # a real residual, not zeros


def test_report_lists_every_bad_input(built):
    _, _, report = built
    damage = make_dummy_data.DAMAGE
    skipped = {entry["video"]: entry for entry in report["skipped_videos"]}
    assert set(skipped) == {
        damage["corrupt"], damage["empty"], damage["no_face"],
        damage["missing_video"], damage["missing_mask"],
    }
    assert "corrupt or truncated" in skipped[damage["corrupt"]]["reason"]
    assert "0 bytes" in skipped[damage["empty"]]["reason"]
    assert "no face" in skipped[damage["no_face"]]["reason"]
    assert "video not found" in skipped[damage["missing_video"]]["reason"]
    assert "mask video not found" in skipped[damage["missing_mask"]]["reason"]
    assert skipped[damage["corrupt"]]["split"] == "train"
    short = [e for e in report["skipped_frames"] if e["video"] == damage["short_mask"]]
    assert [e["frame"] for e in short] == [1, 2]
    assert all("mask video has 1 frames" in e["reason"] for e in short)
    video, frame = damage["blanked_frame"]
    assert [(e["video"], e["frame"]) for e in report["flagged_frames"]] == [(video, frame)]
    assert report["counts"] == {"skipped_videos": 5, "skipped_frames": 2, "flagged_frames": 1}
    assert report["examples"] == DUMMY_SPLITS
    assert report["runner"] == "python"


def test_flagged_frame_is_kept_with_a_borrowed_box(built):
    _, examples, _ = built
    video, frame = make_dummy_data.DAMAGE["blanked_frame"]
    frames = {
        int(e["frame"]): e for e in examples["validation"] if e["video"].decode() == video
    }
    assert sorted(frames) == [0, 1, 2]
    # The blank grey frame has no face; its box is a neighbour's.
    assert any(np.array_equal(frames[frame]["box"], frames[i]["box"]) for i in (0, 2))


def test_beam_build_writes_the_same_dataset_and_report(built, tmp_path):
    import apache_beam as beam

    _, python_examples, python_report = built
    options = beam.options.pipeline_options.PipelineOptions(
        flags=["--runner=FnApiRunner", "--direct_num_workers=1"]
    )
    builder = _build(tmp_path / "data", DUMMY_DATA, beam_options=options)
    report = json.loads((builder.data_path / ffpp_dataset_builder.REPORT_FILENAME).read_text())
    assert report["runner"] == "beam"
    for key in (
        "counts", "examples", "skipped_videos", "skipped_frames", "flagged_frames",
        "frames", "methods", "methods_absent", "methods_unknown",
    ):
        assert report[key] == python_report[key], key
    for split, expected in python_examples.items():
        got = {
            (e["video"], int(e["frame"])): e for e in tfds.as_numpy(builder.as_dataset(split=split))
        }
        want = {(e["video"], int(e["frame"])): e for e in expected}
        assert got.keys() == want.keys()
        some = sorted(want)[0]
        np.testing.assert_array_equal(got[some]["image"], want[some]["image"])
        np.testing.assert_array_equal(got[some]["noise"], want[some]["noise"])


@pytest.mark.slow
def test_tfds_cli_with_two_beam_worker_processes(tmp_path):
    """`tfds build` imports the builder as `ffpp.ffpp_dataset_builder`: workers must cope."""
    tfds_cli = epath.Path(sys.executable).parent / "tfds"
    command = [
        str(tfds_cli), "build", "tfds_ffpp/ffpp", "--config=c40",
        f"--manual_dir={DUMMY_DATA}", f"--data_dir={tmp_path}",
        "--beam_pipeline_options=runner=FnApiRunner,direct_num_workers=2,"
        "direct_running_mode=multi_processing",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    version = ffpp_dataset_builder.Builder.VERSION
    report = json.loads((tmp_path / f"ffpp/c40/{version}" / "build_report.json").read_text())
    assert report["runner"] == "beam"
    assert report["examples"] == DUMMY_SPLITS
    assert report["counts"] == {"skipped_videos": 5, "skipped_frames": 2, "flagged_frames": 1}
    # Worker processes' example tallies reach the report too.
    assert report["frames"]["train"]["real"]["achieved"] == 6
    assert report["frames"]["train"]["fake"]["achieved"] == 19
    assert report["methods"] == list(ffpp_dataset_builder.METHODS)


@pytest.mark.slow
def test_sample_config_builds_without_manual_dir(tmp_path):
    builder = _build(tmp_path / "data", None, config="sample")
    for split in ("train", "validation", "test"):
        labels = {int(e["label"]) for e in tfds.as_numpy(builder.as_dataset(split=split))}
        assert labels == {0, 1}, f"{split} lacks real or fake examples"
    report = json.loads((builder.data_path / ffpp_dataset_builder.REPORT_FILENAME).read_text())
    assert report["counts"]["skipped_videos"] == 0
    assert builder.info.metadata["methods"] == list(ffpp_dataset_builder.METHODS)
    assert builder.info.metadata["methods_absent"] == []
    # The generated tree sits in the download folder, reused by a rebuild.
    assert (tmp_path / "data" / "downloads" / "ffpp_sample" / "sample.json").exists()


# === Table I frame counts ===


def _listed(tmp_path, config):
    """A builder whose splits were listed over dummy_data (nothing extracted)."""
    builder = ffpp_dataset_builder.Builder(data_dir=str(tmp_path / "data"), config=config)
    dl_manager = tfds.download.DownloadManager(
        download_dir=str(tmp_path / "dl"), manual_dir=str(DUMMY_DATA),
        manual_dir_instructions=builder.MANUAL_DOWNLOAD_INSTRUCTIONS,
    )
    builder._split_generators(dl_manager)
    return builder


def test_paper_configs_ask_table_one_frame_counts(tmp_path):
    for name in ("c23_paper", "c40_paper"):
        config = ffpp_dataset_builder.Builder.builder_configs[name]
        assert {split: config.frames(split, real=False) for split in DUMMY_SPLITS} == {
            "train": 270, "validation": 100, "test": 100,
        }
        assert {split: config.frames(split, real=True) for split in DUMMY_SPLITS} == {
            "train": 1080, "validation": 400, "test": 400,
        }
    requested = _listed(tmp_path, "c23_paper")._requested
    # dummy_data: 2 real videos per split; 8, 7 and 7 fakes found (one
    # missing from validation and test each).
    assert requested["train"] == {
        "real": {"videos": 2, "per_video": 1080, "requested": 2160},
        "fake": {"videos": 8, "per_video": 270, "requested": 2160},
    }
    assert requested["validation"]["real"]["requested"] == 800
    assert requested["validation"]["fake"] == {"videos": 7, "per_video": 100, "requested": 700}


def test_report_shows_requested_and_achieved_frames(built):
    _, examples, report = built
    for split, split_examples in examples.items():
        labels = [int(e["label"]) for e in split_examples]
        frames = report["frames"][split]
        assert frames["real"]["achieved"] == labels.count(0)
        assert frames["fake"]["achieved"] == labels.count(1)
        assert frames["real"]["per_video"] == frames["fake"]["per_video"] == 32
        assert frames["real"]["requested"] == 32 * frames["real"]["videos"]
    # 3-frame dummy videos give 3 frames each, not 32; the damaged ones none.
    assert report["frames"]["train"] == {
        "real": {"videos": 2, "per_video": 32, "requested": 64, "achieved": 6},
        "fake": {"videos": 8, "per_video": 32, "requested": 256, "achieved": 19},
        "real_to_fake": {"requested": 0.25, "achieved": round(6 / 19, 4)},
    }


# === Partial downloads ===


def test_partial_download_builds_the_methods_present(tmp_path, caplog):
    root = _copy_dummy(tmp_path)
    manipulated = root / "manipulated_sequences"
    for method in ("Face2Face", "NeuralTextures"):
        (manipulated / method).rmtree()
    # Folders the builder does not know: FaceShifter (no masks) and junk.
    (manipulated / "FaceShifter" / "c23" / "videos").mkdir(parents=True)
    (manipulated / "FaceShifter" / "c23" / "videos" / "000_001.mp4").write_bytes(b"\0" * 64)
    (manipulated / "Foo").mkdir()
    with caplog.at_level("INFO"):
        builder = _build(tmp_path / "data", root)

    present, absent = ["Deepfakes", "FaceSwap"], ["Face2Face", "NeuralTextures"]
    assert builder.info.metadata["methods"] == present
    assert builder.info.metadata["methods_absent"] == absent
    # ... and so does a fresh builder reading the dataset back.
    reloaded = ffpp_dataset_builder.Builder(data_dir=str(tmp_path / "data"), config="c23")
    assert reloaded.info.metadata["methods"] == present
    assert reloaded.info.metadata["methods_absent"] == absent

    report = json.loads((builder.data_path / ffpp_dataset_builder.REPORT_FILENAME).read_text())
    assert report["methods"] == present
    assert [entry["method"] for entry in report["methods_absent"]] == absent
    assert report["methods_absent"][0]["reason"] == f"no folder {manipulated / 'Face2Face'}"
    unknown = {epath.Path(e["folder"]).name: e["reason"] for e in report["methods_unknown"]}
    assert sorted(unknown) == ["FaceShifter", "Foo"]
    assert unknown["FaceShifter"].endswith("it has no masks")
    assert "Deepfakes, Face2Face, FaceSwap, NeuralTextures" in unknown["Foo"]
    # Nothing of an absent method is reported missing: it was never asked for.
    for kind in ("skipped_videos", "skipped_frames", "flagged_frames"):
        assert not any(e["video"].startswith(tuple(absent)) for e in report[kind]), kind

    messages = [record.getMessage() for record in caplog.records]
    warning = [message for message in messages if "building 2 of 4 methods" in message]
    assert len(warning) == 1
    for name in absent + ["FaceShifter", "Foo"]:
        assert name in warning[0]

    # Method ids keep their meaning: 1 Deepfakes, 3 FaceSwap, whatever is present.
    names = builder.info.features["method"].names
    assert names == ["real", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
    seen = set()
    for split in ("train", "validation", "test"):
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            method = example["video"].decode().split("/")[0]
            assert names[example["method"]] == method
            seen.add(method)
    assert seen == {"real", *present}

    # The last line about the report names the report where it now is.
    lines = [message for message in messages if "details in" in message]
    final = builder.data_path / ffpp_dataset_builder.REPORT_FILENAME
    assert lines[-1].endswith(f"details in {final}") and final.exists()
    assert "incomplete" not in lines[-1]


# === The input tree: refused when empty, never silently reused when changed ===


def _snapshot(folder):
    """Name, size and modification time of every file in a folder."""
    stats = {p.name: p.stat() for p in pathlib.Path(folder).iterdir()}
    return {name: (stat.st_size, stat.st_mtime_ns) for name, stat in stats.items()}


def test_fingerprint_follows_what_the_build_reads(tmp_path):
    import shutil

    builder = ffpp_dataset_builder.Builder(data_dir=str(tmp_path / "data"), config="c23")

    def fingerprint(root):
        root = epath.Path(root)
        return video_builder.input_fingerprint(root, builder._input_paths(root))

    original = fingerprint(DUMMY_DATA)
    copy = _copy_dummy(tmp_path)
    assert fingerprint(copy)["input_fingerprint"] == original["input_fingerprint"]
    assert fingerprint(copy)["manual_dir"] == str(copy)
    # Files the c23 build does not read leave it alone ...
    (copy / "original_sequences/youtube/c40/videos/000.mp4").unlink()
    (copy / "manipulated_sequences/FaceShifter/c23/videos").mkdir(parents=True)
    assert fingerprint(copy)["input_fingerprint"] == original["input_fingerprint"]
    # ... what it reads changes it: a split file, a video, a new method.
    changed = []
    splits = copy / "splits" / "test.json"
    splits.write_text(splits.read_text().replace("004", "004 "))
    changed.append(fingerprint(copy))
    (copy / "original_sequences/youtube/c23/videos/006.mp4").write_bytes(b"\0")
    changed.append(fingerprint(copy))
    (copy / "manipulated_sequences/Face2Face").rmtree()
    changed.append(fingerprint(copy))
    digests = [original["input_fingerprint"]] + [c["input_fingerprint"] for c in changed]
    assert len(set(digests)) == 4
    shutil.rmtree(tmp_path / "ffpp")


def test_manual_dir_is_checked_before_a_build_is_reused(built, tmp_path):
    import shutil

    builder, _, _ = built
    data_dir = builder.data_path.parent.parent.parent
    dataset_files = _snapshot(builder.data_path)
    # The tree it was built from: reused (TFDS' "Reusing dataset").
    _build(data_dir, DUMMY_DATA)
    # A copy of it elsewhere: the same input, reused too.
    _build(data_dir, _copy_dummy(tmp_path))
    # An empty or missing folder: refused, naming it (it used to be reused).
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileError, match=f"^{empty}: is empty; ffpp/c23 expects FaceForensics"):
        _build(data_dir, empty)
    with pytest.raises(FileError, match=f"^{tmp_path / 'nowhere'}: no such folder"):
        _build(data_dir, tmp_path / "nowhere")
    # Another tree: refused, naming both trees and the way out.
    other = epath.Path(tmp_path / "other")
    shutil.copytree(DUMMY_DATA, other)
    (other / "original_sequences/youtube/c23/videos/001.mp4").unlink()
    with pytest.raises(FileError) as info:
        _build(data_dir, other)
    message = str(info.value)
    assert message.startswith(f"{other}: is not the tree that ffpp/c23/")
    assert f"in {builder.data_path} was built from ({DUMMY_DATA}" in message
    assert "--overwrite" in message
    assert _snapshot(builder.data_path) == dataset_files


def test_sample_takes_no_manual_dir(tmp_path):
    with pytest.raises(FileError, match="--config=sample_photos --manual_dir="):
        _build(tmp_path / "data", DUMMY_DATA, config="sample")
    needs = "sample_photos needs --manual_dir .*`ffseg sample DIR --photos"
    with pytest.raises(FileNotFoundError, match=needs):
        _build(tmp_path / "data", None, config="sample_photos")
    assert not (tmp_path / "data" / "ffpp" / "sample").exists()


def test_own_photos_recipe_with_the_cli(tmp_path):
    """The README recipe: `ffseg sample --photos`, then `tfds build --config=sample_photos`."""
    import cv2
    from skimage import data as skdata

    from ffseg import cli

    photos = tmp_path / "my_faces"
    photos.mkdir()
    cv2.imwrite(
        str(photos / "me.png"), cv2.cvtColor(skdata.astronaut()[:, ::-1].copy(), cv2.COLOR_RGB2BGR)
    )
    my_sample = tmp_path / "my_sample"
    assert cli.main(["sample", str(my_sample), "--photos", str(photos), "--frames", "2"]) == 0
    data_dir = tmp_path / "tfds"
    tfds_cli = str(epath.Path(sys.executable).parent / "tfds")

    def tfds_build(manual_dir):
        command = [
            tfds_cli, "build", "tfds_ffpp/ffpp", "--config=sample_photos",
            f"--manual_dir={manual_dir}", f"--data_dir={data_dir}",
        ]
        return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)

    result = tfds_build(my_sample)
    assert result.returncode == 0, result.stderr[-3000:]
    final = data_dir / "ffpp" / "sample_photos" / str(ffpp_dataset_builder.Builder.VERSION)
    report = json.loads((final / "build_report.json").read_text())
    assert report["manual_dir"] == str(my_sample)
    assert report["counts"]["skipped_videos"] == 0
    # Its own dataset: the embedded sample is neither used nor touched.
    built_configs = [p.name for p in (data_dir / "ffpp").iterdir() if p.name != ".config"]
    assert built_configs == ["sample_photos"]
    # The build's report line points at the report where it ended up (the
    # tfds command logs to stdout).
    lines = [line for line in result.stdout.splitlines() if "details in" in line]
    assert lines and lines[-1].endswith(f"details in {final / 'build_report.json'}"), lines
    assert "incomplete" not in lines[-1]
    # The photo is in the dataset: the identity made from it has its real video.
    identities = json.loads((my_sample / "sample.json").read_text())["identities"]
    mine = {f"real/{n}" for n, origin in identities.items() if origin.startswith(str(photos))}
    assert mine
    builder = ffpp_dataset_builder.Builder(data_dir=str(data_dir), config="sample_photos")
    videos = {
        e["video"].decode()
        for split in ("train", "validation", "test")
        for e in tfds.as_numpy(builder.as_dataset(split=split))
    }
    assert mine <= videos

    # Other photos, the same recipe: the dataset of the first tree is not
    # reused for the second, nor overwritten.
    cv2.imwrite(str(photos / "me_too.png"), cv2.imread(str(photos / "me.png"))[:, ::-1])
    other_sample = tmp_path / "other_sample"
    assert cli.main(["sample", str(other_sample), "--photos", str(photos), "--frames", "2"]) == 0
    before = _snapshot(final)
    result = tfds_build(other_sample)
    assert result.returncode != 0
    assert f"{other_sample}: is not the tree that ffpp/sample_photos/" in result.stderr
    assert "--overwrite" in result.stderr
    assert _snapshot(final) == before

    # An empty manual_dir is refused, naming it (in process: the same entry
    # point as the command's, without a third start-up of TensorFlow).
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileError, match=f"^{empty}: is empty; ffpp/sample_photos expects a tree"):
        _build(data_dir, empty, config="sample_photos")
    assert _snapshot(final) == before


def test_class_names_match_the_model_config():
    from ffseg import config

    assert ffpp_dataset_builder.METHOD_NAMES == config.CLASS_NAMES
    assert ffpp_dataset_builder.METHODS == config.METHODS


if __name__ == "__main__":
    tfds.testing.test_main()
