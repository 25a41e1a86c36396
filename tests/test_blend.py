"""Tests for ffseg.signal.blend: pseudo-fakes, their masks and noise labels, the grid."""

import os

import cv2
import numpy as np
import pytest

from ffseg.errors import FileError
from ffseg.signal import blend, faces, landmarks, noise, video
from tests import media


@pytest.fixture(scope="module")
def crops():
    """Real faces, found and cropped as for training, with their landmarks (299 px)."""
    found = {}
    for name in ("astronaut", "grace_hopper"):
        (found[name],) = blend.face_crops(
            [(name, media.PHOTOS[name]())], count=1, detector=faces.FaceDetector(max_side=None))
    return found


def make(crops, kind, seed, part=None, target="astronaut", sigma=5.0, options=None):
    options = blend.BlendOptions() if options is None else options
    face = crops[target]
    if kind == "self":
        return blend.self_blend(face.image, face.points, seed, sigma=sigma, part=part,
                                options=options)
    donor = crops["grace_hopper" if target == "astronaut" else "astronaut"]
    return blend.cross_blend(face.image, face.points, donor.image, donor.points, seed,
                             sigma=sigma, part=part, options=options)


def hull_distances(points, part, shape):
    """Distances, in pixels, to the part's hull union: (inside it, outside it).

    Drawn here with cv2.fillPoly from the landmark groups, apart from the module.
    """
    inside = np.zeros(shape[:2], np.uint8)
    for group in blend.PARTS[part]:
        hull = cv2.convexHull(points[list(group)].astype(np.float32))
        cv2.fillPoly(inside, [np.round(hull).astype(np.int32)], 1)
    depth = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    away = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 5)
    return depth, away


def part_side(points, part):
    area = sum(cv2.contourArea(cv2.convexHull(points[list(g)].astype(np.float32)))
               for g in blend.PARTS[part])
    return float(np.sqrt(area))


@pytest.mark.parametrize("kind", blend.KINDS)
@pytest.mark.parametrize("part", sorted(blend.PARTS))
def test_mask_is_zero_outside_the_dilated_hull_and_non_zero_inside_the_eroded_hull(
        crops, kind, part):
    options = blend.BlendOptions()
    for target in ("astronaut", "grace_hopper"):
        points = crops[target].points
        depth, away = hull_distances(points, part, (299, 299))
        side = part_side(points, part)
        # The deformation moves a point by at most sqrt(2) * elastic * side, then
        # erosion/dilation by morph * side, then the blur reaches blur/2 * side;
        # 3 px cover the hull's rasterisation and the bilinear sampling.
        reach = side * (np.sqrt(2) * options.elastic + options.morph)
        outside = away > reach + side * options.blur / 2 + 3
        deep = depth > reach + 3
        assert deep.sum() > 20 and outside.sum() > 1000  # neither check is empty
        for seed in range(4):
            fake = make(crops, kind, seed, part=part, target=target)
            assert fake.mask.dtype == np.float32 and fake.mask.shape == (299, 299)
            assert fake.mask.min() >= 0 and fake.mask.max() <= 1
            assert not fake.mask[outside].any(), (target, seed)
            assert (fake.mask[deep] > 0).all(), (target, seed)
            assert fake.part == part and fake.kind == kind


@pytest.mark.parametrize("kind", blend.KINDS)
def test_pseudo_fake_equals_the_face_outside_the_mask(crops, kind):
    face = crops["astronaut"].image
    for seed in range(6):
        fake = make(crops, kind, seed)
        assert fake.image.dtype == np.uint8 and fake.image.shape == face.shape
        untouched = fake.mask == 0
        assert untouched.sum() > 10_000
        assert np.array_equal(fake.image[untouched], face[untouched])
        # ... and it is a fake: most of the fully masked pixels changed.
        core = fake.mask == 1
        changed = (fake.image != face).any(axis=2)
        assert changed[core].mean() > 0.5, (seed, fake.part, fake.blend_ratio)


@pytest.mark.parametrize("kind", blend.KINDS)
def test_same_seed_same_output_bit_for_bit(crops, kind):
    first, again, other = make(crops, kind, 11), make(crops, kind, 11), make(crops, kind, 12)
    for name in ("image", "mask", "noise"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    assert (first.part, first.blend_ratio) == (again.part, again.blend_ratio)
    assert not np.array_equal(first.image, other.image)
    # A part mask alone is reproducible too.
    points = crops["astronaut"].points
    assert np.array_equal(blend.part_mask(points, "face", (299, 299), 5),
                          blend.part_mask(points, "face", (299, 299), 5))


@pytest.mark.parametrize("kind", blend.KINDS)
def test_noise_label_is_that_of_the_blended_face(crops, kind):
    for sigma in (5.0, 10.0):
        fake = make(crops, kind, 3, sigma=sigma)
        expected = noise.to_gray(noise.noise_residual(fake.image, sigma))
        assert fake.noise.dtype == np.float32 and fake.noise.shape == (299, 299)
        assert np.array_equal(fake.noise, expected)


def test_random_draws_cover_their_ranges(crops):
    fakes = [make(crops, "self", seed) for seed in range(40)]
    ratios = [fake.blend_ratio for fake in fakes]
    assert min(ratios) >= 0.25 and max(ratios) <= 1.0
    assert max(ratios) - min(ratios) > 0.5
    assert {fake.part for fake in fakes} == set(blend.PARTS)


def test_cross_blend_aligns_the_donor_by_landmarks(crops):
    # A known similarity is recovered from the points it moved.
    points = crops["grace_hopper"].points.astype(np.float64)
    angle, scale, shift = np.deg2rad(8.0), 0.8, np.array([12.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                 [np.sin(angle), np.cos(angle)]])
    moved = points @ rotation.T + shift
    matrix = blend._similarity(points, moved)
    assert np.allclose(matrix[:, :2], rotation, atol=1e-6)
    assert np.allclose(matrix[:, 2], shift, atol=1e-4)
    # In a cross-blend the donor's features lie on the face's: with the whole
    # face masked at full strength, the image is closer to the aligned donor
    # than to the face where the mask is 1.
    options = blend.BlendOptions(blend_ratio=(1.0, 1.0), jpeg_probability=0.0,
                                 filter_probabilities=(0.0, 0.0), translation=0.0,
                                 scale=(1.0, 1.0), channel_shift=0.0, brightness=0.0,
                                 contrast=0.0, saturation=0.0)
    fake = make(crops, "cross", 0, part="face", options=options)
    face, donor = crops["astronaut"], crops["grace_hopper"]
    aligned = cv2.warpAffine(donor.image, blend._similarity(donor.points, face.points),
                             (299, 299), borderMode=cv2.BORDER_REFLECT_101)
    core = fake.mask == 1
    grey = [cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[core].astype(np.float64)
            for x in (fake.image, aligned, face.image)]
    assert np.corrcoef(grey[0], grey[1])[0, 1] > 0.95
    assert np.corrcoef(grey[0], grey[2])[0, 1] < 0.6


def test_bad_inputs_are_refused(crops):
    face = crops["astronaut"]
    for seed in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="seed"):
            blend.self_blend(face.image, face.points, seed)
    with pytest.raises(ValueError, match="landmarks"):
        blend.self_blend(face.image, face.points[:60], 0)
    with pytest.raises(ValueError, match="NaN"):
        blend.self_blend(face.image, np.full((68, 2), np.nan), 0)
    with pytest.raises(ValueError, match="uint8"):
        blend.self_blend(face.image.astype(np.float32), face.points, 0)
    with pytest.raises(ValueError, match="part"):
        blend.self_blend(face.image, face.points, 0, part="nose")
    with pytest.raises(ValueError, match="donor"):
        blend.cross_blend(face.image, face.points, face.image[:, :, 0], face.points, 0)
    with pytest.raises(ValueError, match="cover no pixel"):
        blend.self_blend(face.image, face.points + 1000, 0)
    # A thin part (all points nearly on a line) keeps a mask.
    flat = face.points.copy()
    flat[:, 1] = 150 + 0.01 * flat[:, 1]
    for seed in range(5):
        assert blend.part_mask(flat, "mouth", (299, 299), seed).max() > 0
    with pytest.raises(ValueError, match="blend_ratio"):
        blend.BlendOptions(blend_ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="parts"):
        blend.BlendOptions(parts=("ears",), part_weights=(1.0,))


# --- the grid ------------------------------------------------------------------


def write_png(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def test_grid_from_a_photo_never_overwrites(tmp_path, crops):
    photo = write_png(tmp_path / "astronaut.png", media.astronaut())
    out = tmp_path / "grids"
    first = blend.write_grid(photo, out, rows=2, cell=64)
    assert first == str(out / "astronaut-pseudo-fakes.png")
    written = open(first, "rb").read()
    second = blend.write_grid(photo, out, rows=2, cell=64)
    assert second == str(out / "astronaut-pseudo-fakes-2.png")
    assert open(first, "rb").read() == written
    grid = cv2.cvtColor(cv2.imread(second), cv2.COLOR_BGR2RGB)
    assert grid.shape == (blend._HEADER_HEIGHT + 2 * 64, blend._LABEL_WIDTH + 4 * 64, 3)
    assert np.array_equal(grid, cv2.cvtColor(cv2.imread(first), cv2.COLOR_BGR2RGB))
    # The header has text over every column; the first column is the face.
    header = grid[: blend._HEADER_HEIGHT]
    for column in range(4):
        left = blend._LABEL_WIDTH + column * 64
        assert (header[:, left:left + 64] < 128).any()
    face_cell = grid[blend._HEADER_HEIGHT:blend._HEADER_HEIGHT + 64, blend._LABEL_WIDTH:
                     blend._LABEL_WIDTH + 64]
    expected = cv2.resize(crops["astronaut"].image, (64, 64), interpolation=cv2.INTER_AREA)
    assert np.abs(face_cell.astype(int) - expected).max() <= 2


def test_grid_rows_alternate_kinds_and_skip_the_same_picture(crops):
    face, hopper = crops["astronaut"], crops["grace_hopper"]
    with_self = blend.grid_image([face], [face], rows=2, cell=48)
    without = blend.grid_image([face], [], rows=2, cell=48)
    # The astronaut as her own donor is skipped: both rows are self-blends
    # (by identity descriptors; without them, as the same picture).
    assert np.array_equal(with_self, without)
    crossed = blend.grid_image([face], [face, hopper], rows=2, cell=48)
    top = blend._HEADER_HEIGHT
    assert np.array_equal(crossed[:top + 48], without[:top + 48])  # row 0: self
    second_fake = crossed[top + 48:, blend._LABEL_WIDTH + 48:blend._LABEL_WIDTH + 96]
    expected = make(crops, "cross", 1, part="face").image
    expected = cv2.resize(expected, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(second_fake, expected)  # row 1: cross with Grace Hopper


def test_grid_from_a_video_uses_its_first_faces_and_another_person(tmp_path):
    clip = media.face_clip("astronaut", num_frames=6, blank_frames=(0,))
    path = str(tmp_path / "clip.mp4")
    video.write_video(path, clip.frames, qp=0)
    found = blend.face_crops(blend.read_frames(path), count=3, path=path,
                             descriptor=landmarks.FaceDescriptor())
    assert [f.caption for f in found] == ["frame 1", "frame 2", "frame 3"]
    # The astronaut in the video is the astronaut of the built-in donors (a
    # different picture: other size, background and compression), so only
    # Grace Hopper may be pasted onto her.
    astronaut, hopper = blend.builtin_donors()
    assert blend._same_person(found[0], astronaut) and not blend._same_person(found[0], hopper)
    grid = blend.grid_image(found[:1], [astronaut, hopper], rows=2, cell=48)
    top, left = blend._HEADER_HEIGHT + 48, blend._LABEL_WIDTH + 48
    expected = blend.cross_blend(found[0].image, found[0].points, hopper.image, hopper.points,
                                 1, part="face").image
    expected = cv2.resize(expected, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.array_equal(grid[top:top + 48, left:left + 48], expected)
    written = blend.write_grid(path, tmp_path, rows=3, cell=48)
    assert os.path.basename(written) == "clip-pseudo-fakes.png"
    assert cv2.imread(written).shape[0] == blend._HEADER_HEIGHT + 3 * 48


def test_grid_inputs_that_cannot_be_used_are_named(tmp_path):
    with pytest.raises(FileError, match="missing.png: file not found"):
        blend.write_grid(tmp_path / "missing.png", tmp_path)
    coffee = write_png(tmp_path / "coffee.png", media.coffee())
    with pytest.raises(faces.NoFaceError, match="coffee.png: no face"):
        blend.write_grid(coffee, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(coffee, "rb").read()[:40])
    with pytest.raises(FileError, match="broken.png: a PNG image that OpenCV cannot decode"):
        blend.write_grid(broken, tmp_path)
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"not a video at all" * 100)
    with pytest.raises(video.VideoError, match="notes.mp4"):
        blend.write_grid(not_video, tmp_path)
    photo = write_png(tmp_path / "astronaut.png", media.astronaut())
    with pytest.raises(FileError, match="exists and is not a folder"):
        blend.write_grid(photo, coffee)
    with pytest.raises(faces.NoFaceError, match="coffee.png"):
        blend.write_grid(photo, tmp_path / "out", donors=[coffee])


def test_landmark_module_and_generator_import_no_tensorflow():
    # Also covered by tests/test_layering.py for the whole signal layer; this
    # names the new modules explicitly.
    import subprocess
    import sys

    code = ("import sys; import ffseg.signal.blend, ffseg.signal.landmarks; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert landmarks.NUM_LANDMARKS == 68
