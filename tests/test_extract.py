"""Tests for ffseg.extract: face crops, masks in lockstep, noise labels, bad videos."""

import os

import numpy as np
import pytest

from ffseg.signal import extract, faces, masks, noise, video
from tests import media

NUM_FRAMES = 24


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


@pytest.fixture(scope="module")
def manipulated(tmp_path_factory):
    """A moving face (h264 QP 23) with its lossy h264 mask video, like FF++ c23."""
    folder = tmp_path_factory.mktemp("extract")
    clip = media.face_clip("astronaut", NUM_FRAMES, step=(5, 2.5))
    video_path = media.write_clip(folder / "000_003.mp4", clip.frames)
    mask_path = media.write_clip(folder / "masks" / "000_003.mp4", clip.mask_frames())
    return clip, video_path, mask_path, folder


def check_example(example, size=299):
    assert set(example) == {"image", "mask", "noise", "frame", "box", "detected", "flags"}
    assert example["image"].shape == (size, size, 3) and example["image"].dtype == np.uint8
    assert example["mask"].shape == (size, size, 1) and example["mask"].dtype == np.uint8
    assert set(np.unique(example["mask"])) <= {0, 1}
    assert example["noise"].shape == (size, size) and example["noise"].dtype == np.float32
    assert isinstance(example["frame"], int) and isinstance(example["detected"], bool)
    assert isinstance(example["flags"], list) and all(isinstance(f, str) for f in example["flags"])
    assert len(example["box"]) == 4 and all(isinstance(v, int) for v in example["box"])


def test_manipulated_video(manipulated, detector):
    clip, video_path, mask_path, _ = manipulated
    examples, skipped = extract.extract_video(
        video_path, mask_path, num_frames=6, sigma=5, detector=detector
    )
    assert skipped == []
    assert [e["frame"] for e in examples] == video.sample_indices(NUM_FRAMES, 6).tolist()
    ious = []
    for example in examples:
        check_example(example)
        assert example["flags"] == []
        frame = example["frame"]
        box = example["box"]
        assert example["detected"]
        # The box is the 1.3x square about the face.
        truth = clip.face_boxes[frame]
        assert abs((box[0] + box[2]) / 2 - (truth[0] + truth[2]) / 2) < 10
        assert abs((box[1] + box[3]) / 2 - (truth[1] + truth[3]) / 2) < 12
        # The mask survives h264, thresholding and the crop: IoU >= 0.95
        # with the true mask cropped by the same box.
        expected = faces.crop_mask(clip.masks[frame], box)
        ious.append(media.iou(example["mask"][:, :, 0], expected))
        assert ious[-1] >= 0.95
        # The image is the crop of that very frame.
        original = faces.crop(clip.frames[frame], box)
        assert np.abs(example["image"].astype(int) - original).mean() < 4
        # The noise label is the paper's Eq. 4-5 residual of the crop, in gray.
        expected_noise = noise.to_gray(noise.noise_residual(example["image"], 5))
        np.testing.assert_allclose(example["noise"], expected_noise, atol=1e-5)
    # Measured: ~0.998. A mask one frame late (5 px of motion) scores ~0.90.
    assert np.mean(ious) >= 0.98


def test_masks_stay_aligned_when_the_face_moves(tmp_path, detector):
    # The face crosses 190 px of the frame; masks must follow it frame by frame.
    clip = media.face_clip("grace_hopper", 20, start=(20, 40), step=(10, 3))
    video_path = media.write_clip(tmp_path / "moving.mp4", clip.frames, codec="mp4v", qp=None)
    mask_path = media.write_clip(tmp_path / "moving_mask.mp4", clip.mask_frames(), qp=30)
    examples, _ = extract.extract_video(
        video_path, mask_path, num_frames=8, sigma=10, detector=detector
    )
    assert len(examples) == 8
    first_box = examples[0]["box"]
    centroids = []
    for example in examples:
        truth = faces.crop_mask(clip.masks[example["frame"]], example["box"])
        assert media.iou(example["mask"][:, :, 0], truth) >= 0.95
        rows, cols = np.nonzero(example["mask"][:, :, 0])
        centroids.append((cols.mean(), rows.mean()))
        if example["frame"] >= 10:
            # Control: the first frame's box would have missed the mask.
            stale = faces.crop_mask(clip.masks[example["frame"]], first_box)
            assert media.iou(example["mask"][:, :, 0], stale) < 0.5
    # In crop coordinates the face mask stays put (up to dlib's box jitter,
    # its HOG cells are 8 px) while in the frame it travels ~70 px a sample.
    assert np.ptp(np.array(centroids), axis=0).max() < 30
    travelled = [(b[0] + b[2]) / 2 for b in (examples[0]["box"], examples[-1]["box"])]
    assert travelled[1] - travelled[0] > 150


def test_real_video_has_empty_masks(manipulated, detector):
    clip, video_path, _, _ = manipulated
    examples, skipped = extract.extract_video(
        video_path, None, num_frames=4, size=128, sigma=5, detector=detector
    )
    assert skipped == [] and len(examples) == 4
    for example in examples:
        check_example(example, size=128)
        assert not example["mask"].any()


def test_short_mask_video_frames_are_skipped_not_zeroed(manipulated, tmp_path, detector):
    clip, video_path, _, _ = manipulated
    short = media.write_clip(tmp_path / "short_mask.mp4", clip.mask_frames()[:14])
    examples, skipped = extract.extract_video(
        video_path, short, num_frames=6, sigma=5, detector=detector
    )
    sampled = video.sample_indices(NUM_FRAMES, 6).tolist()
    assert [e["frame"] for e in examples] == [f for f in sampled if f < 14]
    assert skipped == [
        {"frame": f, "reason": "mask video has 14 frames"} for f in sampled if f >= 14
    ]
    assert all(e["mask"].any() for e in examples)


def test_explicit_frame_indices(manipulated, detector):
    clip, video_path, mask_path, _ = manipulated
    examples, skipped = extract.extract_video(
        video_path, mask_path, num_frames=None, sigma=5, detector=detector,
        frame_indices=[7, 2, 40],
    )
    assert [e["frame"] for e in examples] == [2, 7]
    assert skipped == [{"frame": 40, "reason": f"video has {NUM_FRAMES} frames"}]


def test_frames_without_a_face_borrow_the_nearest_box(tmp_path, detector):
    clip = media.face_clip("astronaut", 10, step=(4, 2), blank_frames=(0, 1, 6))
    video_path = media.write_clip(tmp_path / "blank.mp4", clip.frames)
    mask_path = media.write_clip(tmp_path / "blank_mask.mp4", clip.mask_frames())
    examples, skipped = extract.extract_video(
        video_path, mask_path, num_frames=None, sigma=5, detector=detector
    )
    assert skipped == [] and len(examples) == 10
    by_frame = {e["frame"]: e for e in examples}
    assert [e["detected"] for e in examples] == [i not in (0, 1, 6) for i in range(10)]
    assert by_frame[0]["box"] == by_frame[1]["box"] == by_frame[2]["box"]
    assert by_frame[6]["box"] == by_frame[5]["box"]
    assert not by_frame[0]["mask"].any()  # the face, and its mask, are absent there


def test_video_without_faces(tmp_path, detector):
    path = media.write_clip(tmp_path / "coffee.mp4", media.still_clip(media.coffee(), 6))
    with pytest.raises(faces.NoFaceError) as info:
        extract.extract_video(path, None, num_frames=3, sigma=5, detector=detector)
    assert info.value.path == path and path in str(info.value)


def test_mask_of_another_size_is_an_error(manipulated, tmp_path, detector):
    clip, video_path, _, _ = manipulated
    small = [m[::2, ::2] for m in clip.mask_frames()]
    mask_path = media.write_clip(tmp_path / "small_mask.mp4", small)
    with pytest.raises(video.VideoError) as info:
        extract.extract_video(video_path, mask_path, num_frames=3, sigma=5, detector=detector)
    assert info.value.path == mask_path
    assert "320x240" in info.value.reason and "640x480" in info.value.reason


@pytest.mark.parametrize("damage", ["zero_bytes", "random_bytes", "truncated"])
def test_damaged_files_name_the_file(manipulated, tmp_path, detector, damage):
    _, video_path, mask_path, _ = manipulated
    bad = tmp_path / f"{damage}.mp4"
    if damage == "zero_bytes":
        bad.write_bytes(b"")
    elif damage == "random_bytes":
        media.random_bytes(bad)
    else:
        media.truncate(video_path, bad, 0.5)
    for args in [(bad, mask_path), (video_path, bad)]:
        with pytest.raises(video.VideoError) as info:
            extract.extract_video(*args, num_frames=3, sigma=5, detector=detector)
        assert info.value.path == os.fspath(bad)
        assert os.fspath(bad) in str(info.value)


def test_timings_and_default_detector(manipulated):
    _, video_path, mask_path, _ = manipulated
    timings = {}
    examples, _ = extract.extract_video(
        video_path, mask_path, num_frames=2, sigma=5, timings=timings
    )
    assert len(examples) == 2
    assert set(timings) == {"decode", "mask", "detect", "crop", "noise"}
    assert all(seconds > 0 for seconds in timings.values())


def test_bad_sigma(manipulated):
    _, video_path, _, _ = manipulated
    with pytest.raises(ValueError, match="sigma"):
        extract.extract_video(video_path, None, num_frames=2, sigma=0)


# --- mask videos that do not fit their video ----------------------------------


def test_mask_video_longer_than_its_video_flags_every_frame(manipulated, tmp_path, detector):
    clip, video_path, _, _ = manipulated
    frames = clip.mask_frames()
    longer = media.write_clip(tmp_path / "long_mask.mp4", frames + frames[-4:])
    examples, skipped = extract.extract_video(
        video_path, longer, num_frames=4, sigma=5, detector=detector
    )
    assert skipped == [] and len(examples) == 4
    for example in examples:
        assert example["mask"].any()
        assert example["flags"] == [
            f"mask video has more frames than the video ({NUM_FRAMES}); masks are assumed "
            "to start at frame 0"
        ]
    # The same mask video, just as long as its video, raises no flag.
    examples, _ = extract.extract_video(
        video_path, media.write_clip(tmp_path / "mask.mp4", frames), num_frames=4, sigma=5,
        detector=detector,
    )
    assert all(e["flags"] == [] for e in examples)


@pytest.mark.parametrize("value, what", [(0, "empty (all black)"), (255, "full (all white)")])
def test_mask_video_without_a_region_is_an_error(manipulated, tmp_path, detector, value, what):
    clip, video_path, _, _ = manipulated
    flat = [np.full_like(frame, value) for frame in clip.mask_frames()]
    mask_path = media.write_clip(tmp_path / "flat_mask.mp4", flat)
    with pytest.raises(video.VideoError) as info:
        extract.extract_video(video_path, mask_path, num_frames=4, sigma=5, detector=detector)
    assert info.value.path == mask_path
    assert f"mask video is {what} in all 4 sampled frames" in info.value.reason


def test_empty_or_misplaced_mask_frames_are_kept_and_flagged(manipulated, tmp_path, detector):
    clip, video_path, _, _ = manipulated
    frames = [frame.copy() for frame in clip.mask_frames()]
    sampled = video.sample_indices(NUM_FRAMES, 4).tolist()  # [0, 8, 15, 23]
    frames[sampled[1]][:] = 0  # nothing marked
    frames[sampled[2]][:] = 0
    frames[sampled[2]][-60:, -60:] = 255  # marked, but in a corner far from the face
    mask_path = media.write_clip(tmp_path / "holes.mp4", frames)
    examples, skipped = extract.extract_video(
        video_path, mask_path, num_frames=4, sigma=5, detector=detector
    )
    assert skipped == [] and [e["frame"] for e in examples] == sampled
    flags = [e["flags"] for e in examples]
    assert flags == [
        [],
        ["mask frame is empty (all black) in a manipulated video"],
        ["mask lies wholly outside the face crop"],
        [],
    ]
    assert not examples[1]["mask"].any() and not examples[2]["mask"].any()


def test_mask_video_rotated_unlike_its_video_is_an_error(manipulated, tmp_path, detector):
    # A 180-degree turn keeps the frame size, so only the rotation tells.
    _, video_path, mask_path, _ = manipulated
    turned = tmp_path / "turned_mask.mp4"
    media.ffmpeg("-display_rotation", "180", "-i", mask_path, "-c", "copy", str(turned))
    with pytest.raises(video.VideoError) as info:
        extract.extract_video(video_path, turned, num_frames=3, sigma=5, detector=detector)
    assert info.value.path == str(turned)
    assert "display rotation of 180 degrees" in info.value.reason


def test_video_with_rotation_metadata_is_decoded_upright(tmp_path, detector):
    # A phone video: stored sideways, with the rotation that shows it upright.
    import cv2

    clip = media.face_clip("astronaut", 6)
    stored = media.write_clip(
        tmp_path / "sideways.mp4", [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in clip.frames]
    )
    stored_mask = media.write_clip(
        tmp_path / "sideways_mask.mp4",
        [cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE) for f in clip.mask_frames()],
    )
    upright, upright_mask = tmp_path / "upright.mp4", tmp_path / "upright_mask.mp4"
    media.ffmpeg("-display_rotation", "90", "-i", stored, "-c", "copy", str(upright))
    media.ffmpeg("-display_rotation", "90", "-i", stored_mask, "-c", "copy", str(upright_mask))
    examples, skipped = extract.extract_video(
        upright, upright_mask, num_frames=3, sigma=5, detector=detector
    )
    assert skipped == [] and len(examples) == 3
    for example in examples:
        assert example["detected"] and example["flags"] == []
        expected = faces.crop_mask(clip.masks[example["frame"]], example["box"])
        assert media.iou(example["mask"][:, :, 0], expected) >= 0.95


# --- frame sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, face_px",
    [
        ((1080, 1920), 300),  # searched at 640x360: the box is scaled back to 1080p
        ((120, 160), 100),  # never upscaled; the 1.3x box is shrunk to the frame's height
    ],
)
def test_frame_sizes_from_1080p_to_160x120(tmp_path, detector, size, face_px):
    import cv2

    height, width = size
    if height >= 480:
        clip = media.face_clip("astronaut", 3, size=size, face_px=face_px, start=(700, 300))
    else:
        # The astronaut photo scaled so that her face is face_px wide, cut to
        # 160x120 about the face, three times over.
        left, top, right, bottom = media.photo_face_box("astronaut")
        zoom = face_px / (right - left)
        photo = cv2.resize(media.astronaut(), None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
        x = int((left + right) / 2 * zoom) - width // 2
        y = int((top + bottom) / 2 * zoom) - height // 2
        frame = np.ascontiguousarray(photo[y:y + height, x:x + width])
        box = tuple(int(round(v * zoom)) - offset
                    for v, offset in zip((left, top, right, bottom), (x, y, x, y)))
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2),
                    (face_px // 2, int(face_px * 0.6)), 0, 0, 360, 1, -1)
        clip = media.Clip([frame] * 3, [mask] * 3, [box] * 3)
    video_path = media.write_clip(tmp_path / "clip.mp4", clip.frames)
    mask_path = media.write_clip(tmp_path / "mask.mp4", clip.mask_frames())
    examples, skipped = extract.extract_video(
        video_path, mask_path, num_frames=3, sigma=5, detector=detector
    )
    assert skipped == [] and len(examples) == 3
    for example in examples:
        check_example(example)
        assert example["detected"] and example["flags"] == []
        x0, y0, x1, y1 = example["box"]
        assert x1 - x0 == y1 - y0 and 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        if height == 120:
            assert (y0, y1) == (0, 120)
        truth = clip.face_boxes[example["frame"]]
        tolerance = 0.1 * (truth[2] - truth[0])
        assert abs((x0 + x1) / 2 - (truth[0] + truth[2]) / 2) < tolerance
        expected = faces.crop_mask(clip.masks[example["frame"]], example["box"])
        assert media.iou(example["mask"][:, :, 0], expected) >= 0.9


# --- streaming: bounded memory, same results as extracting from frames in memory ---


def _extract_in_memory(video_path, mask_path, detector, *, num_frames, size=299, sigma=5):
    """The examples computed the way the extractor did before it streamed.

    Every sampled frame and mask frame decoded at once, every face found, and
    each frame without one given the box of the nearest frame with one (by
    brute force: smallest index distance, the earlier frame on a tie).
    """
    indices, frames = video.sample_frames(video_path, num_frames)
    indices = indices.tolist()
    mask_frames, _ = video.read_frames(mask_path, indices)
    found = {}
    for index, frame in zip(indices, frames):
        face = detector.largest(frame)
        if face is not None:
            found[index] = faces.face_box(face, frame.shape)
    examples = []
    for index, frame in zip(indices, frames):
        nearest = min(found, key=lambda f: (abs(f - index), f))
        box = found[nearest]
        mask = masks.binary_mask(mask_frames[index])
        image = faces.crop(frame, box, size)
        cropped = faces.crop_mask(mask, box, size)
        flags = []
        if not mask.any():
            flags.append("mask frame is empty (all black) in a manipulated video")
        elif not cropped.any():
            flags.append("mask lies wholly outside the face crop")
        examples.append({
            "image": image, "mask": cropped[:, :, None],
            "noise": noise.to_gray(noise.noise_residual(image, sigma)).astype(np.float32),
            "frame": index, "box": box, "detected": index in found, "flags": flags,
        })
    return examples


@pytest.fixture(scope="module")
def gaps(tmp_path_factory):
    """A face missing from frames 0-2 and 19 (the ends), 9 and 13-15 (two ties)."""
    folder = tmp_path_factory.mktemp("gaps")
    blank = (0, 1, 2, 9, 13, 14, 15, 19)
    clip = media.face_clip("astronaut", 20, step=(8, 3), blank_frames=blank)
    video_path = media.write_clip(folder / "gaps.mp4", clip.frames)
    mask_path = media.write_clip(folder / "gaps_mask.mp4", clip.mask_frames())
    return blank, video_path, mask_path


@pytest.mark.parametrize("num_frames", [None, 8])
def test_streaming_gives_what_extracting_in_memory_gives(gaps, detector, num_frames):
    blank, video_path, mask_path = gaps
    expected = _extract_in_memory(video_path, mask_path, detector, num_frames=num_frames)
    assert [not e["detected"] for e in expected] == [e["frame"] in blank for e in expected]
    frame_bytes = 640 * 480 * 4  # a frame and its binarised mask
    # Frames without a face wait in memory (default), are all decoded again at
    # the end (0), or some of each (room for one frame).
    for max_pending_bytes in (extract.MAX_PENDING_BYTES, 0, frame_bytes):
        examples, skipped = extract.iter_extract_video(
            video_path, mask_path, num_frames=num_frames, sigma=5, detector=detector,
            max_pending_bytes=max_pending_bytes,
        )
        assert skipped == []
        examples = list(examples)
        assert [e["frame"] for e in examples] == [e["frame"] for e in expected]
        for example, truth in zip(examples, expected):
            check_example(example)
            assert set(example) == set(truth)
            for key in example:
                np.testing.assert_array_equal(example[key], truth[key], err_msg=key)
    if num_frames is None:
        by_frame = {e["frame"]: e["box"] for e in examples}
        # Ties go to the earlier frame: 9 takes 8's box, 14 takes 12's.
        assert by_frame[9] == by_frame[8] != by_frame[10]
        assert by_frame[13] == by_frame[14] == by_frame[12] != by_frame[15] == by_frame[16]
        assert by_frame[0] == by_frame[3] and by_frame[19] == by_frame[18]


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """120 frames of 640x480 and their mask videos: a short and a long gap at the start."""
    folder = tmp_path_factory.mktemp("long")
    clips = {}
    for gap in (5, 60):
        clip = media.face_clip("astronaut", 120, face_px=170, start=(60, 20), step=(1.0, 0.3),
                               blank_frames=range(gap))
        clips[gap] = (
            media.write_clip(folder / f"long_{gap}.mp4", clip.frames),
            media.write_clip(folder / f"long_{gap}_mask.mp4", clip.mask_frames()),
        )
    return clips


@pytest.mark.parametrize("gap, max_pending_bytes", [
    (5, extract.MAX_PENDING_BYTES),  # the faceless frames wait in memory
    (60, 4 * 2**20),  # three of them wait, the others are decoded again
])
def test_memory_stays_bounded_while_streaming(long_clips, gap, max_pending_bytes):
    import tracemalloc

    video_path, mask_path = long_clips[gap]
    # Faces of 170 px are found at half size: a quick detector.
    detector = faces.FaceDetector(max_side=320)
    decoded_bytes = 120 * 640 * 480 * 3  # every frame of the video, decoded
    tracemalloc.start()
    try:
        examples, skipped = extract.iter_extract_video(
            video_path, mask_path, num_frames=None, size=128, sigma=5, detector=detector,
            max_pending_bytes=max_pending_bytes,
        )
        count = detected = 0
        for example in examples:  # written away one by one, as a builder does
            count += 1
            detected += example["detected"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert skipped == [] and count == 120 and detected == 120 - gap
    # Measured: 8.5 MiB (110 MiB of frames, 37 MiB more of masks), of which
    # 6 MiB are the 128 px crops kept until the video is checked whole.
    assert peak < decoded_bytes / 8, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_nothing_is_handed_out_before_the_video_is_checked(manipulated, tmp_path, detector):
    # Cut short with its index up front: the frames before the cut decode, the
    # fault shows at the end of the stream, after they were cropped. The call
    # fails; it returns no partial iterator.
    clip, video_path, mask_path, _ = manipulated
    indexed = media.remux(video_path, tmp_path / "indexed.mp4", "-movflags", "+faststart")
    bad = media.truncate(indexed, tmp_path / "truncated.mp4", 0.9)
    with pytest.raises(video.VideoError, match=f"lists {NUM_FRAMES} frames but only"):
        extract.iter_extract_video(bad, mask_path, num_frames=None, sigma=5, detector=detector)
    # The mask frames are the wrong size, which shows at the first frame: the
    # video's own fault is still the one reported, as when all was read first.
    small = media.write_clip(tmp_path / "small.mp4", [m[::2, ::2] for m in clip.mask_frames()])
    with pytest.raises(video.VideoError) as info:
        extract.iter_extract_video(bad, small, num_frames=None, sigma=5, detector=detector)
    assert info.value.path == os.fspath(bad) and "but only" in info.value.reason
