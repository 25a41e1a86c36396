"""Tests of ffseg.sample: the generated FaceForensics++-layout tree.

The tree must look like FF++ to the builder (FF++'s folder layout and split rule) and
its masks must mark exactly the manipulated pixels, as FF++'s masks do.
"""

import hashlib
import json

import cv2
import numpy as np
import pytest

from ffseg.signal import masks as masks_lib
from ffseg.signal import sample
from ffseg.signal import video as video_lib

SMALL = dict(num_frames=3, frame_size=(320, 240), face_side=110, pairs_per_split=(1, 1, 1))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return sample.make_sample_ffpp(tmp_path_factory.mktemp("ffpp") / "sample", seed=3, **SMALL)


def _pairs(root):
    return {
        split: json.loads((root / "splits" / f"{split}.json").read_text())
        for split in sample.SPLIT_NAMES
    }


def _frames(path):
    return [frame for _, frame in video_lib.iter_frames(path)]


def test_layout_has_every_listed_video(tree):
    for split, pairs in _pairs(tree).items():
        assert pairs, f"{split} has no pairs"
        for target, source in pairs:
            for quality in ("c23", "c40"):
                for real in (target, source):
                    folder = tree / "original_sequences/youtube" / quality / "videos"
                    assert (folder / f"{real}.mp4").is_file()
                for method in sample.METHODS:
                    for name in (f"{target}_{source}", f"{source}_{target}"):
                        base = tree / "manipulated_sequences" / method
                        assert (base / quality / "videos" / f"{name}.mp4").is_file()
                        assert (base / "masks" / "videos" / f"{name}.mp4").is_file()
    # Nothing but the FF++ layout and the provenance file at the top.
    assert sorted(p.name for p in tree.iterdir()) == [
        "manipulated_sequences",
        "original_sequences",
        "sample.json",
        "splits",
    ]


def test_splits_are_disjoint_pairs_of_three_digit_ids(tree):
    pairs = _pairs(tree)
    seen = {}
    for split, split_pairs in pairs.items():
        for pair in split_pairs:
            assert len(pair) == 2 and pair[0] != pair[1]
            for video_id in pair:
                assert len(video_id) == 3 and video_id.isdigit()
                assert video_id not in seen, f"{video_id} in {seen.get(video_id)} and {split}"
                seen[video_id] = split
    assert len(seen) == 2 * sum(SMALL["pairs_per_split"])
    provenance = json.loads((tree / "sample.json").read_text())
    assert sorted(provenance["identities"]) == sorted(seen)


def test_videos_decode_with_the_requested_frames_and_c40_is_coarser(tree):
    real = tree / "original_sequences/youtube/c23/videos/000.mp4"
    info = video_lib.video_info(real)
    assert (info["frame_count"], info["width"], info["height"]) == (3, 320, 240)
    # QP 40 throws away more than QP 23: smaller files, further from each other.
    for name in ("000", "001"):
        c23 = tree / f"original_sequences/youtube/c23/videos/{name}.mp4"
        c40 = tree / f"original_sequences/youtube/c40/videos/{name}.mp4"
        assert c40.stat().st_size < 0.7 * c23.stat().st_size


def test_real_videos_show_a_moving_camera(tree):
    frames = _frames(tree / "original_sequences/youtube/c23/videos/000.mp4")
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 2.0


@pytest.mark.parametrize("method", sample.METHODS)
def test_decoded_masks_mark_where_the_video_changed(tree, method):
    target, source = _pairs(tree)["train"][0]
    name = f"{target}_{source}"
    fake = _frames(tree / "manipulated_sequences" / method / "c23/videos" / f"{name}.mp4")
    real = _frames(tree / "original_sequences/youtube/c23/videos" / f"{target}.mp4")
    mask_frames = _frames(tree / "manipulated_sequences" / method / "masks/videos" / f"{name}.mp4")
    assert len(fake) == len(real) == len(mask_frames) == SMALL["num_frames"]
    for fake_frame, real_frame, mask_frame in zip(fake, real, mask_frames):
        mask = masks_lib.binary_mask(mask_frame)
        assert mask.mean() > 0.005, "mask is (nearly) empty"
        diff = np.abs(fake_frame.astype(int) - real_frame.astype(int)).max(axis=-1)
        inside = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
        outside = cv2.dilate(mask, np.ones((13, 13), np.uint8)) == 0
        # Measured: inside >= 9.3, outside <= 1.7 grey levels at c23.
        assert diff[inside].mean() > 5.0
        assert diff[outside].mean() < 2.0


@pytest.mark.parametrize("method", sample.METHODS)
def test_raw_masks_are_exactly_the_changed_pixels(tree, method):
    identities = sample._make_identities(
        sample._load_photos(None), 2, np.random.default_rng(0), face_side=110
    )
    real, fake, masks = sample.render_sample(
        method, identities[0], identities[1], num_frames=2, frame_size=(320, 240), seed=0
    )
    for real_frame, fake_frame, mask in zip(real, fake, masks):
        changed = (real_frame != fake_frame).any(axis=-1)
        np.testing.assert_array_equal(mask.astype(bool), changed)
        assert set(np.unique(mask)) == {0, 1}
        # The manipulation stays on the face: its bounding box is inside the
        # middle of the frame, where the face is rendered.
        ys, xs = np.nonzero(mask)
        assert 40 <= xs.min() and xs.max() < 280 and 10 <= ys.min() and ys.max() < 230
    if method in ("Deepfakes", "FaceSwap"):
        # A swap replaces the face centre; an expression edit may not.
        assert all(m[120, 160] for m in masks)


def test_same_seed_same_tree_other_seed_other_motion():
    identities_a = sample._make_identities(
        sample._load_photos(None), 2, np.random.default_rng(7), face_side=110
    )
    identities_b = sample._make_identities(
        sample._load_photos(None), 2, np.random.default_rng(7), face_side=110
    )
    identities_c = sample._make_identities(
        sample._load_photos(None), 2, np.random.default_rng(8), face_side=110
    )
    frame_a = sample.render_real_frame(identities_a[0], 1, 4, (320, 240))
    frame_b = sample.render_real_frame(identities_b[0], 1, 4, (320, 240))
    frame_c = sample.render_real_frame(identities_c[0], 1, 4, (320, 240))
    np.testing.assert_array_equal(frame_a, frame_b)
    assert not np.array_equal(frame_a, frame_c)


def test_user_photos_join_and_faceless_photos_are_left_out(tmp_path, caplog):
    import skimage.data

    photos = tmp_path / "photos"
    photos.mkdir()
    # A face photo of a new "person" (a crop of the astronaut) and a photo
    # without a face.
    face = skimage.data.astronaut()[:300, 80:380, ::-1]
    cv2.imwrite(str(photos / "person.png"), face)
    cv2.imwrite(str(photos / "wall.png"), np.full((200, 200, 3), 90, np.uint8))
    with caplog.at_level("WARNING", logger="ffseg.signal.sample"):
        loaded = sample._load_photos(photos)
        identities = sample._make_identities(loaded, 6, np.random.default_rng(0), face_side=110)
    origins = [identity.origin for identity in identities]
    assert any("person.png" in origin for origin in origins)
    assert not any("wall.png" in origin for origin in origins)
    assert "wall.png" in caplog.text


def test_every_method_has_one_renderer_in_ffpp_order():
    assert tuple(sample._RENDERERS) == sample.METHODS
    with pytest.raises(ValueError, match="unknown method 'FaceShifter'"):
        sample.render_sample("FaceShifter", None, None, num_frames=2)


def test_a_folder_that_holds_anything_is_never_written_over(tmp_path):
    from ffseg.errors import FileError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileError, match=f"{tmp_path}: already exists and is not empty"):
        sample.make_sample_ffpp(tmp_path, **SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_photo_folders_without_a_usable_face_photo_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match=f"{empty}: holds no photo"):
        sample.make_sample_ffpp(tmp_path / "a", photos=empty, **SMALL)
    walls = tmp_path / "walls"
    walls.mkdir()
    cv2.imwrite(str(walls / "wall.png"), np.full((200, 200, 3), 90, np.uint8))
    with pytest.raises(ValueError, match=f"none of the 1 photos in {walls} shows a face"):
        sample.make_sample_ffpp(tmp_path / "b", photos=walls, **SMALL)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        sample.make_sample_ffpp(tmp_path, methods=("FaceShifter",))
    with pytest.raises(ValueError, match="face_side"):
        sample.make_sample_ffpp(tmp_path, face_side=40)
    with pytest.raises(ValueError, match="num_frames"):
        sample.make_sample_ffpp(tmp_path, num_frames=1)


def test_cli_writes_a_tree_with_user_photos_and_refuses_a_bad_folder(tmp_path, capsys):
    import cv2
    from skimage import data as skdata

    from ffseg import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(
        str(photos / "mirrored.png"),
        cv2.cvtColor(skdata.astronaut()[:, ::-1].copy(), cv2.COLOR_RGB2BGR),
    )
    out = tmp_path / "tree"
    assert cli.main(["sample", str(out), "--photos", str(photos), "--frames", "2"]) == 0
    assert (out / "splits" / "train.json").exists()
    assert sorted(
        p.name for p in (out / "original_sequences" / "youtube" / "c23" / "videos").iterdir()
    )
    # The photo is in the tree, and its content is recorded for the builder.
    provenance = json.loads((out / "sample.json").read_text())
    photo = str(photos / "mirrored.png")
    assert any(origin.startswith(photo) for origin in provenance["identities"].values())
    digest = hashlib.sha256((photos / "mirrored.png").read_bytes()).hexdigest()
    assert provenance["photos"] == {photo: digest}
    assert cli.main(["sample", str(tmp_path / "other"), "--photos", str(tmp_path / "missing")]) == 2
    assert "ffseg sample:" in capsys.readouterr().err
    # A second run into the same folder is refused, naming it; the tree is untouched.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert cli.main(["sample", str(out), "--frames", "2"]) == 2
    assert f"ffseg sample: {out}: already exists and is not empty" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
