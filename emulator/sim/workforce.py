"""A simulated public workforce: bird boxes with ACS-BoundingBox-like consolidation, and class choices (text or
image classification) with ACS-style weighted-vote consolidation.

Workers answer from the reference boxes an image carries (see `openimages.read_reference`), the way people do:
edges land a few percent of the box size off (a little loose more often than tight), small or occluded birds are
sometimes missed, birds beyond the eighth in a flock are boxed only as far as patience lasts (the task asks for at
least 8), touching birds now and then get one box together, and very rarely a bird-like distractor gets boxed. Nobody
answers wildly: the noise is what consolidation exists to remove.

Consolidation follows what AWS documents for bounding boxes: boxes from different workers are clustered by IoU, each
cluster's coordinates are averaged, clusters that fewer than half of the workers support are dropped, and a box's
confidence comes from agreement (the share of workers supporting it and how well their boxes overlap).

Classification workers come from one crowd per job, each with their own skill (a few careless); they miss more on
ambiguous items, and their mistakes fall on neighbouring classes. Their answers are consolidated by a one-coin
Dawid-Skene EM (AWS documents "a variant of Expectation Maximization"): a vote weighted by each worker's estimated
accuracy, with the chosen class's posterior as the confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from emulator.sim.openimages import ImageReference
from groundtruth.quality import iou

PixelBox = tuple[int, int, int, int]  # left, top, width, height
PATIENCE_BOXES = 8  # the seed's instructions: "if there are more than 8 birds, draw boxes around at least 8"


def worker_answers(ref: ImageReference, n_workers: int, rng: np.random.Generator) -> list[list[PixelBox]]:
    """Each worker's boxes for one image (pixel boxes), drawn from the reference bird boxes with human noise."""
    truth = ref.bird_boxes_px()
    flags = [b for b in ref.boxes if b.is_bird]
    distractors = [b.pixels(ref.width, ref.height) for b in ref.boxes if not b.is_bird]
    return [_one_worker(truth, flags, distractors, ref.width, ref.height, rng) for _ in range(max(1, int(n_workers)))]


def _one_worker(truth, flags, distractors, width: int, height: int, rng: np.random.Generator) -> list[PixelBox]:
    care = rng.uniform(0.6, 1.4)  # some workers are more careful than others
    seen: list[tuple[float, float, float, float]] = []
    for (x, y, w, h), ref in zip(truth, flags, strict=True):
        miss = 0.01 + 0.3 * math.exp(-math.sqrt(w * h) / 14.0) + (0.08 if ref.occluded else 0.0)
        if rng.random() < miss * care:
            continue
        seen.append((x, y, float(w), float(h)))
    if len(seen) > PATIENCE_BOXES:  # large flocks: boxes for the biggest birds, as many as patience allows
        keep = int(rng.integers(PATIENCE_BOXES, len(seen) + 1))
        seen = sorted(seen, key=lambda b: -b[2] * b[3])[:keep]
    if len(seen) >= 2 and rng.random() < 0.12 * care:
        seen = _merge_touching_pair(seen, rng)
    boxes = [_jitter(b, care, rng) for b in seen]
    if distractors and rng.random() < 0.03 * care:  # a kite or a butterfly taken for a bird
        boxes.append(_jitter(distractors[int(rng.integers(len(distractors)))], care, rng))
    return [b for b in (_clip(b, width, height) for b in boxes) if b is not None]


def _merge_touching_pair(boxes: list, rng: np.random.Generator) -> list:
    """Replace the closest overlapping or touching pair by one box around both (a lazy worker's group box)."""
    best, pair = 0.0, None
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            grown = [(x - 0.1 * w, y - 0.1 * h, 1.2 * w, 1.2 * h) for x, y, w, h in (boxes[i], boxes[j])]
            overlap = iou(*grown)
            if overlap > best:
                best, pair = overlap, (i, j)
    if pair is None:
        return boxes
    a, b = boxes[pair[0]], boxes[pair[1]]
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    rest = [box for k, box in enumerate(boxes) if k not in pair]
    return [*rest, (x0, y0, x1 - x0, y1 - y0)]


def _jitter(box, care: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Move each edge by a few percent of the box size, a little outward on average (people draw loose boxes)."""
    x, y, w, h = box
    sx = (0.035 * w + 0.8) * care
    sy = (0.035 * h + 0.8) * care
    left = x - rng.normal(0.01 * w, sx)
    right = x + w + rng.normal(0.01 * w, sx)
    top = y - rng.normal(0.01 * h, sy)
    bottom = y + h + rng.normal(0.01 * h, sy)
    return (left, top, right - left, bottom - top)


def _clip(box, width: int, height: int) -> PixelBox | None:
    x, y, w, h = box
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def consolidate(answers: list[list[PixelBox]], iou_threshold: float = 0.5) -> list[tuple[PixelBox, float]]:
    """One consolidated label from several workers' boxes: [(pixel box, confidence)], most confident first.

    Workers are taken in turn; each worker's boxes are matched one-to-one to the clusters so far (Hungarian
    assignment on IoU with the cluster's mean box; a match needs `iou_threshold`), unmatched boxes open new clusters.
    A cluster supported by fewer than half the workers is dropped. The box is the members' mean; its confidence is
    the share of workers supporting it times their mean IoU with the consolidated box.
    """
    n_workers = len(answers)
    if n_workers == 0:
        return []
    clusters: list[list[tuple[float, float, float, float]]] = []
    for boxes in answers:
        if not boxes:
            continue
        centres = [_mean(c) for c in clusters]
        matched: set[int] = set()
        if centres:
            cost = np.array([[-iou(b, c) for c in centres] for b in boxes])
            for i, j in zip(*linear_sum_assignment(cost), strict=True):
                if -cost[i, j] >= iou_threshold:
                    clusters[j].append(tuple(map(float, boxes[i])))
                    matched.add(i)
        clusters.extend([tuple(map(float, b))] for i, b in enumerate(boxes) if i not in matched)
    need = math.ceil(n_workers / 2)
    out = []
    for members in clusters:
        if len(members) < need:
            continue
        mean = _mean(members)
        box = (round(mean[0]), round(mean[1]), max(1, round(mean[2])), max(1, round(mean[3])))
        agreement = sum(iou(m, box) for m in members) / len(members)
        out.append((box, round(len(members) / n_workers * agreement, 2)))
    return sorted(out, key=lambda pair: -pair[1])


def _mean(members) -> tuple[float, float, float, float]:
    """Average of boxes by their edges (averaging left/right rather than width keeps the box where people put it)."""
    x0 = sum(m[0] for m in members) / len(members)
    y0 = sum(m[1] for m in members) / len(members)
    x1 = sum(m[0] + m[2] for m in members) / len(members)
    y1 = sum(m[1] + m[3] for m in members) / len(members)
    return (x0, y0, x1 - x0, y1 - y0)


# -- classification (text and image) ------------------------------------------------------------------------------
CROWD_SIZE = 40  # distinct workers in one job's crowd; the same people come back batch after batch
CARELESS_SHARE = 0.1  # about one in ten public workers clicks more than reads


@dataclass(frozen=True)
class ClassWorker:
    """One simulated worker of a classification task: how often they are right on a clear item."""

    worker_id: str
    skill: float
    careless: bool


def classification_crowd(rng: np.random.Generator, id_prefix: str, size: int = CROWD_SIZE) -> list[ClassWorker]:
    """A job's crowd: most workers are right on 88-99% of clear items, the careless few on about 60%."""
    careless_ones = set(rng.choice(size, round(size * CARELESS_SHARE), replace=False).tolist())
    crowd = []
    for i in range(size):
        careless = i in careless_ones
        skill = float(rng.uniform(0.45, 0.75) if careless else rng.beta(30, 1.6))
        crowd.append(ClassWorker(f"{id_prefix}.{int(rng.integers(16**12)):012X}", skill, careless))
    return crowd


def confusion_row(true_class: int, n_classes: int) -> np.ndarray:
    """Where a wrong answer goes: neighbouring classes (in the label-category order, which people write with
    related classes side by side) are likelier than far ones."""
    distance = np.abs(np.arange(n_classes) - true_class).astype(float)
    weights = np.exp(-distance)
    weights[true_class] = 0.0
    return weights / weights.sum()


def item_difficulty(rng: np.random.Generator) -> float:
    """How ambiguous one item is (0 = clear): most items are clear, a few are genuinely hard to call."""
    return float(rng.beta(0.4, 12.0))


def class_answers(
    true_class: int,
    n_classes: int,
    workers: list[ClassWorker],
    difficulty: float,
    rng: np.random.Generator,
) -> list[int]:
    """Each given worker's class for one item: right with their skill, less on ambiguous items; wrong answers
    follow the confusion row (so several workers tend to make the same mistake on the same item)."""
    answers = []
    for worker in workers:
        right = worker.skill * (1.0 - difficulty)
        if n_classes == 1 or rng.random() < right:
            answers.append(true_class)
        elif worker.careless and rng.random() < 0.5:  # a careless click lands anywhere
            answers.append(int(rng.integers(n_classes)))
        else:
            answers.append(int(rng.choice(n_classes, p=confusion_row(true_class, n_classes))))
    return answers


def consolidate_classes(
    answers: list[list[tuple[str, int]]],
    n_classes: int,
    prior: dict[str, tuple[float, float]] | None = None,
    iterations: int = 10,
) -> tuple[list[tuple[int, float]], dict[str, tuple[float, float]]]:
    """ACS-style consolidation of a batch of classification answers, [(worker id, class)] per item.

    A one-coin Dawid-Skene EM, the "variant of Expectation Maximization" AWS documents for classification: each
    worker's accuracy is estimated from their agreement with the current consolidated labels (Beta-smoothed, plus
    what earlier batches showed, `prior`: worker -> (agreements, answers)), each item's class posterior weighs every
    answer by that accuracy, and the two are refined in turn. Returns one (class, confidence) per item, the
    confidence being the posterior of the chosen class, and the worker evidence including this batch.
    """
    prior = prior or {}
    if n_classes == 1:
        return [(0, 1.0) for _ in answers], dict(prior)
    workers = sorted({w for item in answers for w, _ in item})
    posteriors = []
    for item in answers:  # start from the plain vote
        votes = np.bincount([c for _, c in item], minlength=n_classes).astype(float) + 1e-3
        posteriors.append(votes / votes.sum())
    accuracy: dict[str, float] = {}
    for _ in range(iterations):
        agree = {w: prior.get(w, (0.0, 0.0))[0] for w in workers}
        seen = {w: prior.get(w, (0.0, 0.0))[1] for w in workers}
        for item, post in zip(answers, posteriors, strict=True):
            for w, c in item:
                agree[w] += post[c]
                seen[w] += 1.0
        # Beta(4, 1) prior: a new worker is presumed good (about 80%), as the crowd mostly is
        accuracy = {w: min(0.995, max(1.0 / n_classes + 1e-3, (agree[w] + 4.0) / (seen[w] + 5.0))) for w in workers}
        class_prior = np.mean(posteriors, axis=0) + 1e-3
        class_prior /= class_prior.sum()
        updated = []
        for item in answers:
            log_post = np.log(class_prior).copy()
            for w, c in item:
                wrong = np.log((1.0 - accuracy[w]) / (n_classes - 1))
                row = np.full(n_classes, wrong)
                row[c] = np.log(accuracy[w])
                log_post += row
            post = np.exp(log_post - log_post.max())
            updated.append(post / post.sum())
        posteriors = updated
    evidence = dict(prior)
    for item, post in zip(answers, posteriors, strict=True):
        chosen = int(np.argmax(post))
        for w, c in item:
            agreed, total = evidence.get(w, (0.0, 0.0))
            evidence[w] = (agreed + float(c == chosen), total + 1.0)
    return [(int(np.argmax(p)), round(float(np.max(p)), 2)) for p in posteriors], evidence
