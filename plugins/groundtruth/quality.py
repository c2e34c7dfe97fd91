"""Box quality against reference boxes, the way the companion object-detection tutorial measures it.

Shared by the emulator (which calibrates auto-labeling on it) and the project's report (which judges finished jobs
with it), so both speak of the same number. Pure functions on plain tuples: no numpy, importable anywhere.

Boxes are Ground Truth pixel boxes ``(left, top, width, height)``. Open Images stores fractions
``XMin, XMax, YMin, YMax``; :func:`openimages_to_pixels` converts between the two.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]
"""A pixel box ``(left, top, width, height)``, as Ground Truth writes it."""


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two pixel boxes; 0.0 when they do not overlap or either has no area."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = min(ax + aw, bx + bw) - max(ax, bx)
    inter_h = min(ay + ah, by + bh) - max(ay, by)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    predicted: Sequence[tuple[Sequence[float], float]], reference: Sequence[Sequence[float]]
) -> list[float]:
    """Greedy matching, most confident prediction first; returns one score per predicted and per reference box.

    Each predicted box (taken in order of decreasing confidence) claims the still unassigned reference box it
    overlaps best and scores that IoU; a predicted box that finds no overlapping reference box scores 0, and so does
    every reference box left unclaimed (a miss). The scores are what :func:`image_miou` averages.
    """
    order = sorted(range(len(predicted)), key=lambda i: -predicted[i][1])
    free = list(range(len(reference)))
    scores: list[float] = []
    for i in order:
        box = predicted[i][0]
        best, best_iou = -1, 0.0
        for j in free:
            overlap = iou(box, reference[j])
            if overlap > best_iou:
                best, best_iou = j, overlap
        if best >= 0:
            free.remove(best)
        scores.append(best_iou)
    scores.extend(0.0 for _ in free)
    return scores


def image_miou(predicted: Sequence[tuple[Sequence[float], float]], reference: Sequence[Sequence[float]]) -> float:
    """One image's mean IoU: predicted ``[(box, confidence), ...]`` against the reference boxes.

    Both empty means the labeler rightly found nothing (1.0); exactly one empty means it is entirely wrong (0.0).
    """
    if not predicted and not reference:
        return 1.0
    if not predicted or not reference:
        return 0.0
    scores = match_boxes(predicted, reference)
    return sum(scores) / len(scores)


def openimages_to_pixels(xmin: float, xmax: float, ymin: float, ymax: float, width: int, height: int) -> Box:
    """An Open Images box (fractions of the image) as a Ground Truth pixel box, edges rounded to whole pixels."""
    left = round(float(xmin) * width)
    top = round(float(ymin) * height)
    right = round(float(xmax) * width)
    bottom = round(float(ymax) * height)
    return (left, top, right - left, bottom - top)
