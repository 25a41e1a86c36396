"""Drawing ``ffseg detect``'s overlays: heatmaps, boxes and scores over a frame.

Pure OpenCV/numpy, so that the drawing can be checked pixel by pixel: each
face's localization map (paper Sec. IV-D, M = 0.1 M1 + 0.2 M2 + 0.7 M3, over
the 1.3x crop box) is coloured with the JET colour map and alpha-blended
over the face's box.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "overlay", "even_frame"]

DEFAULT_THRESHOLD = 0.5


def _colour(score: float, threshold: float) -> tuple[int, int, int]:
    return (230, 40, 40) if score >= threshold else (40, 200, 40)  # RGB red / green


def _label(image, text, origin, colour, scale, thickness) -> None:
    """Text on a filled box, placed above ``origin`` (or below, at the top edge)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (width, height), baseline = cv2.getTextSize(text, font, scale, thickness)
    x, y = int(origin[0]), int(origin[1])
    pad = max(2, thickness)
    top = y - height - baseline - 2 * pad
    if top < 0:  # no room above: put the label inside, under the top edge
        top = y
    x = min(max(x, 0), max(image.shape[1] - width - 2 * pad, 0))
    cv2.rectangle(image, (x, top), (x + width + 2 * pad, top + height + baseline + 2 * pad),
                  colour, -1)
    cv2.putText(image, text, (x + pad, top + pad + height), font, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)


def overlay(
    frame: np.ndarray,
    face_records: list[dict],
    maps: list[np.ndarray],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    alpha: float = 0.45,
    caption: str | None = None,
) -> np.ndarray:
    """Draws localization heatmaps, boxes and scores over a copy of ``frame``.

    Each face's [299, 299] map (0..1) is coloured with OpenCV's JET colour
    map (blue = pristine, red = manipulated), resized to the face's crop box
    and alpha-blended over it; the box is drawn in red for a score at or
    above ``threshold`` (fake) and green below it, thicker for the largest
    face, with "fake 0.93" / "real 0.12" above it. ``caption`` (e.g. the
    video verdict so far) is written in the top-left corner.

    Args:
        frame: HxWx3 RGB uint8.
        face_records: ``[{"box": [x0, y0, x1, y1], "score": float,
            "largest": bool}, ...]``, as ``score_frames`` yields them.
        maps: one float [h, w] map in [0, 1] per face, or None for a face
            without one (a model that does not localise): no heatmap there.

    Returns:
        A new HxWx3 RGB uint8 frame.
    """
    if len(face_records) != len(maps):
        raise ValueError(f"{len(face_records)} faces but {len(maps)} maps")
    image = np.array(frame, dtype=np.uint8, copy=True)
    side = max(image.shape[:2])
    thickness = max(1, int(round(side / 400)))
    scale = max(0.4, side / 1200)
    for record, manipulation in zip(face_records, maps):
        x0, y0, x1, y1 = (int(v) for v in record["box"])
        if x1 <= x0 or y1 <= y0 or manipulation is None:
            continue
        levels = np.clip(np.asarray(manipulation, np.float32) * 255.0 + 0.5, 0, 255)
        heat = cv2.applyColorMap(levels.astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        heat = cv2.resize(heat, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        region = image[y0:y1, x0:x1]
        image[y0:y1, x0:x1] = cv2.addWeighted(region, 1.0 - alpha, heat, alpha, 0.0)
    for record in face_records:
        x0, y0, x1, y1 = (int(v) for v in record["box"])
        score = float(record["score"])
        colour = _colour(score, threshold)
        width = thickness * (2 if record.get("largest") else 1)
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), colour, width)
        word = "fake" if score >= threshold else "real"
        _label(image, f"{word} {score:.2f}", (x0, y0), colour, scale, thickness)
    if caption:
        _label(image, caption, (0, 0), (40, 40, 40), scale, thickness)
    return image


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pads a frame by one black row/column where needed: x264's 4:2:0 wants even sizes."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return cv2.copyMakeBorder(frame, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=0)
