"""celeb_df over its dummy layout (made by make_dummy_data.py from real face videos)."""

import json

import pytest
import tensorflow_datasets as tfds

from tfds_ffpp.celeb_df import celeb_df_dataset_builder, make_dummy_data


class CelebDfTest(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = celeb_df_dataset_builder.Builder
    SPLITS = make_dummy_data.SPLITS


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("celeb_df")
    builder = celeb_df_dataset_builder.Builder(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(celeb_df_dataset_builder.epath.Path(__file__).parent / "dummy_data")
        )
    )
    return builder


def test_examples_are_faces_with_folder_labels(built):
    examples = list(tfds.as_numpy(built.as_dataset(split="test")))
    assert len(examples) == make_dummy_data.SPLITS["test"]
    for example in examples:
        video = example["video"].decode()
        expected = 1 if video.startswith("Celeb-synthesis/") else 0
        assert example["label"] == expected
        assert example["image"].shape == (299, 299, 3) and example["image"].std() > 10
        x0, y0, x1, y1 = example["box"]
        assert x1 - x0 == y1 - y0 > 40
    assert "mask" not in built.info.features and "noise" not in built.info.features
    videos = {e["video"].decode() for e in examples}
    assert make_dummy_data.TRUNCATED not in videos and make_dummy_data.MISSING not in videos


def test_report_lists_the_truncated_and_the_missing_video(built):
    report = json.loads((built.data_path / "build_report.json").read_text())
    reasons = {entry["video"]: entry["reason"] for entry in report["skipped_videos"]}
    assert set(reasons) == {make_dummy_data.TRUNCATED, make_dummy_data.MISSING}
    assert "not found" in reasons[make_dummy_data.MISSING]
    assert reasons[make_dummy_data.TRUNCATED].startswith("video")


@pytest.mark.parametrize(
    "line, message",
    [
        ("1 Celeb-synthesis/id0_id1_0000.mp4", "contradicts folder"),
        ("2 Celeb-real/id0_0000.mp4", "expected"),
        ("1 Other/id0_0000.mp4", "unknown folder"),
    ],
)
def test_bad_test_list_lines_are_refused(tmp_path, line, message):
    path = tmp_path / "List_of_testing_videos.txt"
    path.write_text("1 Celeb-real/id0_0000.mp4\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        celeb_df_dataset_builder.read_test_list(path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="Celeb-real"):
        celeb_df_dataset_builder.check_layout(tmp_path)
