"""Tests for ffseg.video: frame sampling over the real frame count, bad files, encoding."""

import os
import pickle

import numpy as np
import pytest

from ffseg.signal import video
from tests import media


def bar_clip(num_frames=30, height=96, width=160):
    """Frames that identify themselves: a bright bar that moves 4 px a frame."""
    frames = []
    for t in range(num_frames):
        frame = np.full((height, width, 3), 40, np.uint8)
        frame[:, 4 + 4 * t: 10 + 4 * t] = (250, 200, 90)
        frames.append(frame)
    return frames


def identify(decoded, originals):
    """Index of the original each decoded frame is closest to."""
    stack = np.stack(originals).astype(np.int16)
    return [
        int(np.argmin(np.abs(stack - frame.astype(np.int16)).mean(axis=(1, 2, 3))))
        for frame in decoded
    ]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    frames = bar_clip()
    path = tmp_path_factory.mktemp("video") / "bars.mp4"
    media.write_clip(path, frames)
    return str(path), frames


# --- sample_indices ---------------------------------------------------------


def test_sample_indices_even_and_inclusive():
    np.testing.assert_array_equal(video.sample_indices(10, 4), [0, 3, 6, 9])
    np.testing.assert_array_equal(video.sample_indices(100, 3), [0, 50, 99])
    np.testing.assert_array_equal(video.sample_indices(5, 4), [0, 1, 3, 4])


def test_sample_indices_all_frames_when_asked_for_too_many():
    np.testing.assert_array_equal(video.sample_indices(5, None), np.arange(5))
    np.testing.assert_array_equal(video.sample_indices(5, 5), np.arange(5))
    np.testing.assert_array_equal(video.sample_indices(5, 50), np.arange(5))
    assert video.sample_indices(0, 8).size == 0
    assert video.sample_indices(7, 1).tolist() == [0]


def test_sample_indices_rejects_nonsense():
    with pytest.raises(ValueError):
        video.sample_indices(10, 0)
    with pytest.raises(ValueError):
        video.sample_indices(-1, 3)


# --- reading ----------------------------------------------------------------


def test_sample_frames_decodes_the_sampled_frames(clip_file):
    path, originals = clip_file
    indices, frames = video.sample_frames(path, 7)
    np.testing.assert_array_equal(indices, video.sample_indices(30, 7))
    assert identify(frames, originals) == indices.tolist()
    for index, frame in zip(indices, frames):
        assert frame.dtype == np.uint8 and frame.shape == (96, 160, 3)
        # RGB, not OpenCV's BGR: the bar is orange, red > blue.
        bar = frame[:, 6 + 4 * index]
        assert bar[:, 0].mean() > bar[:, 2].mean() + 100
        assert np.abs(frame.astype(int) - originals[index]).mean() < 3


def test_sample_frames_all(clip_file):
    path, originals = clip_file
    indices, frames = video.sample_frames(path, None)
    assert indices.tolist() == list(range(30))
    assert identify(frames, originals) == list(range(30))


def test_mp4v_round_trip(tmp_path):
    originals = bar_clip(12)
    path = tmp_path / "bars_mp4v.mp4"
    assert video.write_video(path, originals, codec="mp4v") == 12
    indices, frames = video.sample_frames(path, 4)
    assert indices.tolist() == [0, 4, 7, 11]
    assert identify(frames, originals) == indices.tolist()


def test_missing_frame_count_is_counted(clip_file, tmp_path):
    # A raw H.264 stream has no container frame count at all.
    path, originals = clip_file
    raw = media.remux(path, tmp_path / "bars.h264")
    assert video.video_info(raw, exact=False)["frame_count"] == 0
    indices, frames = video.sample_frames(raw, 7)
    np.testing.assert_array_equal(indices, video.sample_indices(30, 7))
    assert identify(frames, originals) == indices.tolist()
    assert video.video_info(raw)["frame_count"] == 30


def test_overstated_frame_count_is_corrected(clip_file, tmp_path):
    # Stream-copied into AVI, the container claims many more frames than exist.
    path, originals = clip_file
    avi = media.remux(path, tmp_path / "bars.avi")
    assert video.video_info(avi, exact=False)["frame_count"] > 30
    indices, frames = video.sample_frames(avi, 7)
    np.testing.assert_array_equal(indices, video.sample_indices(30, 7))
    assert identify(frames, originals) == indices.tolist()


def test_understated_frame_count_is_corrected(clip_file, monkeypatch):
    path, originals = clip_file
    monkeypatch.setattr(video, "_reported_count", lambda capture: 20)
    indices, frames = video.sample_frames(path, 7)
    np.testing.assert_array_equal(indices, video.sample_indices(30, 7))
    assert identify(frames, originals) == indices.tolist()


def test_video_info(clip_file):
    path, _ = clip_file
    info = video.video_info(path)
    assert info["frame_count"] == 30 and info["reported_frame_count"] == 30
    assert (info["width"], info["height"]) == (160, 96)
    assert info["fps"] == pytest.approx(25)


@pytest.mark.parametrize("rotation", [90, 180])
def test_rotation_metadata_is_applied_and_reported(clip_file, tmp_path, rotation):
    path, frames = clip_file
    rotated = tmp_path / "rotated.mp4"
    media.ffmpeg("-display_rotation", str(rotation), "-i", path, "-c", "copy", str(rotated))
    info = video.video_info(rotated)
    assert info["rotation"] in (rotation, 360 - rotation)
    assert video.video_info(path)["rotation"] == 0
    _, (first,) = video.sample_frames(rotated, 1)
    if rotation == 180:
        assert (info["width"], info["height"]) == (160, 96)
        expected = frames[0][::-1, ::-1]
    else:
        assert (info["width"], info["height"]) == (96, 160) and first.shape == (160, 96, 3)
        expected = np.rot90(frames[0], 1)  # -display_rotation 90 turns counter-clockwise
    assert np.abs(first.astype(int) - expected).mean() < 6


def test_iter_frames(clip_file):
    path, originals = clip_file
    items = list(video.iter_frames(path, [29, 3, 3, 10]))
    assert [i for i, _ in items] == [3, 10, 29]
    assert identify([f for _, f in items], originals) == [3, 10, 29]
    assert len(list(video.iter_frames(path))) == 30


def test_iter_frames_past_the_end(clip_file):
    path, _ = clip_file
    frames = video.iter_frames(path, [5, 30])
    assert next(frames)[0] == 5
    with pytest.raises(video.VideoError, match="video has 30 frames; frame 30"):
        next(frames)


def test_read_frames_reports_a_short_video(clip_file):
    path, _ = clip_file
    found, count = video.read_frames(path, [0, 29, 35, 40], transform=lambda i, f: f.shape)
    assert sorted(found) == [0, 29] and count == 30
    assert found[0] == (96, 160, 3)
    found, count = video.read_frames(path, [1, 2])
    assert sorted(found) == [1, 2] and count is None


# --- bad files ---------------------------------------------------------------


def raises_naming(path, reason_part, call=lambda p: video.sample_frames(p, 4)):
    with pytest.raises(video.VideoError) as info:
        call(path)
    error = info.value
    assert error.path == os.fspath(path)
    assert os.fspath(path) in str(error)
    assert reason_part in error.reason, error.reason
    return error


def test_missing_file(tmp_path):
    raises_naming(tmp_path / "nope.mp4", "not found")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    raises_naming(path, "empty (0 bytes)")
    raises_naming(path, "empty", video.video_info)
    raises_naming(path, "empty", lambda p: list(video.iter_frames(p)))


def test_directory(tmp_path):
    raises_naming(tmp_path, "not a regular file")


def test_random_bytes(tmp_path):
    path = media.random_bytes(tmp_path / "noise.mp4")
    raises_naming(path, "cannot be opened as a video")


def test_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    raises_naming(path, "cannot be opened as a video")


def test_still_image_is_not_a_video(tmp_path):
    import cv2

    for suffix in (".png", ".jpg"):
        path = tmp_path / f"astronaut{suffix}"
        cv2.imwrite(str(path), media.astronaut()[:, :, ::-1])
        raises_naming(path, "still", lambda p: video.sample_frames(p, None))
        raises_naming(path, "still", video.video_info)


def test_still_gif_renamed_mp4_is_not_a_video(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.mp4"
    Image.fromarray(media.astronaut()).save(path, format="GIF")
    raises_naming(path, "still GIF image", lambda p: video.sample_frames(p, None))
    raises_naming(path, "still GIF image", video.video_info)
    # An animated GIF is a video.
    frames = [Image.fromarray(frame) for frame in bar_clip(4)]
    animated = tmp_path / "bars.gif"
    frames[0].save(animated, save_all=True, append_images=frames[1:], duration=40)
    assert video.video_info(animated)["frame_count"] == 4


def test_audio_only_file(tmp_path):
    path = tmp_path / "silence.mp4"
    media.ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1", "-c:a", "aac",
                 str(path))
    error = raises_naming(path, "cannot be opened as a video")
    assert "no video stream (only audio)" in error.reason


def test_truncated_half_file(clip_file, tmp_path):
    # x264 MP4s from ffmpeg keep the index (moov) at the end: half a file has none.
    path, _ = clip_file
    raises_naming(media.truncate(path, tmp_path / "half.mp4", 0.5), "cannot be opened")


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_faststart_file(clip_file, tmp_path, fraction):
    # With the index first, a truncated file opens and lists every frame, then
    # runs out of data: it must not pass for a shorter video.
    path, _ = clip_file
    faststart = media.remux(path, tmp_path / "fast.mp4", "-movflags", "+faststart")
    assert video.video_info(faststart)["frame_count"] == 30
    cut = media.truncate(faststart, tmp_path / f"cut{fraction}.mp4", fraction)
    error = raises_naming(cut, "truncated or corrupt")
    assert "lists 30 frames" in error.reason
    raises_naming(cut, "truncated", video.video_info)
    raises_naming(cut, "truncated", lambda p: video.read_frames(p, [29]))
    raises_naming(cut, "truncated", lambda p: list(video.iter_frames(p)))


def test_video_error_pickles():
    error = pickle.loads(pickle.dumps(video.VideoError("a/b.mp4", "broken")))
    assert (error.path, error.reason, str(error)) == ("a/b.mp4", "broken", "a/b.mp4: broken")


# --- writing -----------------------------------------------------------------


def test_write_video_qp_controls_quality(tmp_path):
    originals = media.face_clip(num_frames=6).frames
    errors, sizes = {}, {}
    for qp in (10, 40):
        path = tmp_path / f"qp{qp}.mp4"
        assert video.write_video(path, originals, qp=qp) == 6
        _, frames = video.sample_frames(path, None)
        errors[qp] = np.mean([np.abs(f.astype(int) - o).mean() for f, o in zip(frames, originals)])
        sizes[qp] = os.path.getsize(path)
    assert errors[10] < 1.5 < errors[40]
    assert sizes[40] * 3 < sizes[10]


def test_write_video_accepts_gray_and_generators(tmp_path):
    path = tmp_path / "sub" / "gray.mp4"
    written = video.write_video(path, (np.full((32, 48), 200, np.uint8) for _ in range(5)), qp=0)
    assert written == 5
    _, frames = video.sample_frames(path, None)
    assert len(frames) == 5 and abs(int(frames[2][10, 10, 0]) - 200) <= 2


@pytest.mark.parametrize(
    "frames, kwargs, message",
    [
        ([], {}, "no frames"),
        ([np.zeros((31, 48, 3), np.uint8)], {}, "even width and height"),
        ([np.zeros((32, 48, 3), np.float32)], {}, "dtype"),
        ([np.zeros((32, 48, 2), np.uint8)], {}, "shape"),
        ([np.zeros((32, 48, 3), np.uint8), np.zeros((32, 50, 3), np.uint8)], {}, "frame 1"),
        ([np.zeros((32, 48, 3), np.uint8)], {"codec": "mp4v", "qp": 23}, "qp"),
    ],
)
def test_write_video_rejects_bad_input(tmp_path, frames, kwargs, message):
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=message):
        video.write_video(path, frames, **kwargs)
    assert not path.exists()


def test_write_video_reports_encoder_failure(tmp_path):
    with pytest.raises(video.VideoError, match="ffmpeg"):
        video.write_video(tmp_path / "x.mp4", [np.zeros((32, 48, 3), np.uint8)],
                          codec="no_such_encoder")


def test_text_and_bytes_rendered_as_art_are_not_videos(tmp_path, clip_file):
    # OpenCV's FFmpeg opens these: a text file through the tty demuxer (ANSI
    # art), random bytes named .bin through the bin demuxer (BinText). Raw
    # video in AVI has no FOURCC either, and stays a video.
    import cv2

    text = tmp_path / "notes.txt"
    text.write_text("Meeting notes, not a video.\n" * 60)
    binary = media.random_bytes(tmp_path / "dump.bin", size=16_000)
    for path in (text, binary):
        assert cv2.VideoCapture(str(path), cv2.CAP_FFMPEG).isOpened()
        error = raises_naming(path, "cannot be opened as a video")
        assert "text art" in error.reason or "ANSI art" in error.reason
        raises_naming(path, "cannot be opened as a video", video.video_info)
    path, originals = clip_file
    raw = tmp_path / "raw.avi"
    media.ffmpeg("-i", path, "-c:v", "rawvideo", "-pix_fmt", "bgr24", str(raw))
    indices, frames = video.sample_frames(raw, 4)
    assert identify(frames, originals) == indices.tolist() == [0, 10, 19, 29]


def test_iter_sampled_frames_is_the_sample_over_the_verified_count(clip_file, tmp_path):
    path, originals = clip_file
    avi = media.remux(path, tmp_path / "bars.avi")  # the container overstates its count
    sample = video.FrameSample(avi, 7)
    assert sample.reported_frame_count > 30 and sample.frame_count == 30
    assert len(sample) == 7 and (sample.width, sample.height) == (160, 96)
    items = list(video.iter_sampled_frames(avi, 7))
    assert [i for i, _ in items] == video.sample_indices(30, 7).tolist()
    assert identify([f for _, f in items], originals) == [i for i, _ in items]
    # A truncated file fails before a single frame is handed out.
    faststart = media.remux(path, tmp_path / "fast.mp4", "-movflags", "+faststart")
    cut = media.truncate(faststart, tmp_path / "cut.mp4", 0.7)
    frames = video.iter_sampled_frames(cut, 7)
    with pytest.raises(video.VideoError, match="truncated or corrupt"):
        next(frames)
