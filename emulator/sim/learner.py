"""The auto-labeling model: a small object detector trained on the images' pixels, on CPU, in seconds.

How it sees (everything learned from the human labels it is given; nothing about the synthetic scenes is built in):
1. **Cell features.** The image is cut into 8x8-pixel cells. Each cell gets colour (RGB, opponent colours,
   saturation), brightness and its spread, and oriented gradient energy — and the same pooled over 3x3, 7x7 and
   15x15 cells and the whole image, so a cell also knows its surroundings ("brown, textured, on a smooth blue field").
2. **Cell model.** A two-hidden-layer perceptron (numpy, Adam) predicts how much of each cell lies inside a bird box.
   It trains epoch by epoch, so a loaded model keeps learning from its weights (a real warm start).
3. **Proposals.** The cell probabilities, upsampled to 4-px resolution, are cut at three levels; each connected
   region is a candidate box (three levels let touching birds separate where the map dips between them).
4. **Box head.** A logistic model scores each candidate from its shape and the map around it (the probability that
   it matches a true box at IoU 0.5); non-maximum suppression, then candidates above a learned operating point stay.
5. **Image confidence.** A ridge model predicts the image's mIoU from what the prediction looks like (how sure the
   boxes are, how much probability mass they leave unexplained, how ambiguous the map is). Labeling jobs calibrate
   their auto-labeling threshold on exactly this number.

The box head, the operating point and the image-confidence model are fitted on *held-out* training images (a fixed
quarter, chosen by the image's content hash, that the cell model never trains on), so they see the cell model's
honest mistakes rather than its memory of the training set.

Weights travel as npz (`to_npz` / `from_npz`, `allow_pickle=False`): arrays and a format version, nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image
from scipy import ndimage
from threadpoolctl import ThreadpoolController

from groundtruth.quality import image_miou, iou

FORMAT_VERSION = 1
CELL = 8  # pixels per feature cell
SCALES = (1, 2)  # the image and its half-size copy
UPSAMPLE = 2  # proposals are cut from the probability map at CELL / UPSAMPLE = 4-pixel resolution
LEVELS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # cuts of the probability map that propose regions
HIDDEN = (48, 24)
HOLDOUT_SHARE = 0.25
MAX_TRAIN_CELLS = 160_000  # cells per epoch: every cell near a box, and a weighted sample of far background
BATCH = 2048
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
MAP_IMAGES = 48  # validation images scored for the per-epoch mAP log line

PixelBox = tuple[int, int, int, int]
ImageInput = bytes | bytearray | memoryview | np.ndarray


_BLAS: list[ThreadpoolController] = []


def one_blas_thread(fn: Callable) -> Callable:
    """Run `fn` with single-threaded BLAS: the matrices here are small, and on a busy two-core machine BLAS threads
    only fight each other (a 20x slowdown measured); single-threaded, the learner stays predictable."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _BLAS:
            _BLAS.append(ThreadpoolController())
        with _BLAS[0].limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Prediction:
    """Boxes `[(pixel box, confidence)]`, most confident first, and the image confidence (a predicted mIoU)."""

    boxes: list[tuple[PixelBox, float]]
    confidence: float


# ----------------------------------------------------------------------------------------------------------------
# Pixels -> cell features (cached per image content)
# ----------------------------------------------------------------------------------------------------------------
def decode(image: ImageInput) -> np.ndarray:
    """RGB uint8 HxWx3 from JPEG/PNG bytes or an array (greyscale and RGBA are converted)."""
    if isinstance(image, np.ndarray):
        arr = image
    else:
        with Image.open(io.BytesIO(bytes(image))) as img:
            arr = np.asarray(img.convert("RGB"))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3], dtype=np.uint8)


BASE_FEATURES = 20


def cell_means(per_pixel: np.ndarray) -> np.ndarray:
    """Mean over each CELL x CELL block of an (H, W, C) array whose sides are multiples of CELL.

    Sums rows first (contiguous, fast), then the CELL columns of each block: ten times faster than a strided mean.
    """
    h, w, c = per_pixel.shape
    gh, gw = h // CELL, w // CELL
    rows = per_pixel.reshape(gh, CELL, w * c).sum(axis=1).reshape(gh, gw, CELL, c)
    total = rows[:, :, 0].copy()
    for k in range(1, CELL):
        total += rows[:, :, k]
    return total * np.float32(1 / (CELL * CELL))


def base_features(rgb: np.ndarray) -> np.ndarray:
    """Per-cell colour, brightness, texture and oriented gradient energy: float32 (rows, cols, BASE_FEATURES).

    Only what is not linear in the pixels is computed per pixel (squares, gradients, high-pass energy); colour
    means, opponent colours and brightness follow from the cell means, which keeps this at a few milliseconds.
    """
    h, w, _ = rgb.shape
    gh, gw = -(-h // CELL), -(-w // CELL)
    x = np.pad(rgb, ((0, gh * CELL - h), (0, gw * CELL - w), (0, 0)), mode="edge").astype(np.float32)
    x *= np.float32(1 / 255)
    lum = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    opp1 = x[..., 0] - x[..., 1]
    opp2 = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    gx = np.zeros_like(lum)
    gy = np.zeros_like(lum)
    gx[:, 1:-1] = lum[:, 2:] - lum[:, :-2]
    gy[1:-1, :] = lum[2:, :] - lum[:-2, :]
    gxx, gyy, gxy = gx * gx, gy * gy, gx * gy
    fine = np.abs(lum - ndimage.uniform_filter(lum, size=3, mode="nearest"))  # feather-scale texture
    per_pixel = np.stack([lum * lum, gxx, gyy, gxy, np.sqrt(gxx + gyy), fine, opp1 * opp1, opp2 * opp2], axis=-1)
    colour = cell_means(x)
    second = cell_means(per_pixel)
    half = CELL // 2
    quads = lum.reshape(gh, 2, half, gw, 2, half).mean(axis=(2, 5))  # (gh, 2, gw, 2): where in the cell it is bright
    r, g, b = colour[..., 0], colour[..., 1], colour[..., 2]
    mean_lum = 0.299 * r + 0.587 * g + 0.114 * b
    o1, o2 = r - g, 0.5 * (r + g) - b
    cross = (second[..., 1] + second[..., 2]) / 2
    return np.stack(
        [
            r,
            g,
            b,
            colour.max(axis=-1) - colour.min(axis=-1),  # saturation of the cell's colour
            o1,
            o2,
            mean_lum,
            np.sqrt(np.maximum(second[..., 0] - mean_lum**2, 0.0)),  # brightness spread (texture)
            second[..., 4],  # mean gradient magnitude
            np.sqrt(second[..., 1]),  # vertical edges
            np.sqrt(second[..., 2]),  # horizontal edges
            np.sqrt(np.maximum(cross + second[..., 3], 0.0)),  # the two diagonals
            np.sqrt(np.maximum(cross - second[..., 3], 0.0)),
            second[..., 5],  # fine texture
            np.sqrt(np.maximum(second[..., 6] - o1**2, 0.0)),  # colour variety within the cell
            np.sqrt(np.maximum(second[..., 7] - o2**2, 0.0)),
            quads[:, 0, :, 0] - mean_lum,
            quads[:, 0, :, 1] - mean_lum,
            quads[:, 1, :, 0] - mean_lum,
            quads[:, 1, :, 1] - mean_lum,
        ],
        axis=-1,
    )


def context_features(base: np.ndarray) -> np.ndarray:
    """The cell's own features, the same pooled over 3x3, 7x7 and 15x15 cells, and the image mean (x5 features)."""
    base = base.astype(np.float32)
    pooled = [ndimage.uniform_filter(base, size=(k, k, 1), mode="nearest") for k in (3, 7, 15)]
    glob = np.broadcast_to(base.mean(axis=(0, 1), keepdims=True), base.shape)
    return np.concatenate([base, *pooled, glob], axis=-1)


FEATURES = 5 * BASE_FEATURES


@dataclass(frozen=True)
class Pyramid:
    """An image's cell features at every scale of SCALES: [(base features float16, height, width) per scale]."""

    levels: list[tuple[np.ndarray, int, int]]

    @property
    def height(self) -> int:
        return self.levels[0][1]

    @property
    def width(self) -> int:
        return self.levels[0][2]


def pyramid(rgb: np.ndarray) -> Pyramid:
    """Cell features of the image and of its 2x-reduced copy: a large bird at half size looks like a medium one."""
    levels = []
    img = Image.fromarray(rgb)
    for scale in SCALES:
        scaled = rgb if scale == 1 else np.asarray(img.reduce(scale))
        levels.append((base_features(scaled).astype(np.float16), scaled.shape[0], scaled.shape[1]))
    return Pyramid(levels)


class FeatureCache:
    """Cell-feature pyramids by image content hash (the same image is inferred every round), bounded LRU."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, Pyramid] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image: ImageInput) -> Pyramid:
        """The image's feature pyramid, computed once."""
        if isinstance(image, np.ndarray):
            key = hashlib.blake2b(decode(image).tobytes(), digest_size=16).digest()
        else:
            key = hashlib.blake2b(bytes(image), digest_size=16).digest()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        item = pyramid(decode(image))
        with self._lock:
            self._items[key] = item
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item


FEATURE_CACHE = FeatureCache()


def content_hash(image: ImageInput) -> int:
    data = decode(image).tobytes() if isinstance(image, np.ndarray) else bytes(image)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def coverage(boxes: Sequence[Sequence[float]], h: int, w: int) -> np.ndarray:
    """Share of each cell inside the union of the boxes: the cell model's target (rows, cols) in [0, 1]."""
    gh, gw = -(-h // CELL), -(-w // CELL)
    mask = np.zeros((gh * CELL, gw * CELL), dtype=np.float32)
    for x, y, bw, bh in boxes:
        x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
        x1, y1 = min(w, int(round(x + bw))), min(h, int(round(y + bh)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = 1.0
    return mask.reshape(gh, CELL, gw, CELL).mean(axis=(1, 3))


# ----------------------------------------------------------------------------------------------------------------
# The cell model: a small perceptron in numpy
# ----------------------------------------------------------------------------------------------------------------
class CellModel:
    """features -> ReLU -> ReLU -> sigmoid, trained with Adam on soft targets (binary cross-entropy, L2 decay)."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.params = params
        self._adam: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._step = 0

    @classmethod
    def initial(cls, rng: np.random.Generator, n_in: int = FEATURES, hidden: tuple[int, ...] = HIDDEN) -> CellModel:
        sizes = (n_in, *hidden, 1)
        params = {}
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            params[f"W{k}"] = (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32)
            params[f"b{k}"] = np.zeros(b, dtype=np.float32)
        params[f"b{len(sizes) - 2}"][:] = -2.0  # birds cover a small share of cells: start from that prior
        return cls(params)

    @property
    def layers(self) -> int:
        return sum(1 for k in self.params if k.startswith("W"))

    @property
    def width(self) -> int:
        """Units in the last hidden layer (what region pooling reads)."""
        return int(self.params[f"W{self.layers - 1}"].shape[0])

    def _activations(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        for k in range(self.layers):
            z = acts[-1] @ self.params[f"W{k}"] + self.params[f"b{k}"]
            acts.append(np.maximum(z, 0.0) if k < self.layers - 1 else z)
        return acts

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probability per row, last hidden layer's activations per row)."""
        acts = self._activations(x)
        return _sigmoid(acts[-1][:, 0]), acts[-2]

    def loss(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
        p = self.forward(x)[0]
        return float(-(weight * (y * np.log(p + 1e-6) + (1 - y) * np.log(1 - p + 1e-6))).sum() / weight.sum())

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def train_epoch(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray, rng: np.random.Generator) -> None:
        """One pass over (x, y) in shuffled mini-batches of weighted cross-entropy."""
        order = rng.permutation(len(x))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            xb, yb, wb = x[idx], y[idx], weight[idx]
            acts = self._activations(xb)
            p = _sigmoid(acts[-1][:, 0])
            grad = ((p - yb) * wb / wb.sum())[:, None].astype(np.float32)
            grads = {}
            for k in reversed(range(self.layers)):
                grads[f"W{k}"] = acts[k].T @ grad + WEIGHT_DECAY * self.params[f"W{k}"]
                grads[f"b{k}"] = grad.sum(axis=0)
                if k:
                    grad = (grad @ self.params[f"W{k}"].T) * (acts[k] > 0)
            self._adam_step(grads)

    def _adam_step(self, grads: dict[str, np.ndarray], b1: float = 0.9, b2: float = 0.999) -> None:
        self._step += 1
        for name, g in grads.items():
            m, v = self._adam.get(name, (np.zeros_like(g), np.zeros_like(g)))
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            self._adam[name] = (m, v)
            m_hat = m / (1 - b1**self._step)
            v_hat = v / (1 - b2**self._step)
            self.params[name] -= (LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


# ----------------------------------------------------------------------------------------------------------------
# Maps -> candidate boxes, and the features the heads read
# ----------------------------------------------------------------------------------------------------------------
BOX_FEATURES = 23
IMAGE_FEATURES = 10
REFINE_FROM = 1.0  # box regression learns from regions already overlapping a bird this much


@dataclass
class Maps:
    """What the cell model sees at one scale: the probability map (rows, cols), the scale, the image's full size."""

    prob: np.ndarray
    height: int
    width: int
    scale: int = 1

    @cached_property
    def fine(self) -> np.ndarray:
        """The probability map at CELL / UPSAMPLE px resolution, bilinear-like (repeat, then a small box filter)."""
        fine = np.repeat(np.repeat(self.prob, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
        return ndimage.uniform_filter(fine, size=UPSAMPLE + 1, mode="nearest")



@dataclass
class Candidate:
    """A proposed box: the region's bounding box, its features, then the refined box and its predicted IoU."""

    region: tuple[float, float, float, float]  # x0, y0, x1, y1 of the region, pixels
    features: np.ndarray
    box: PixelBox = (0, 0, 0, 0)
    score: float = 0.0


def candidates(maps: Maps) -> list[Candidate]:
    """Connected regions of the probability map at each cut level, with features for the box heads.

    The features describe the region (level, size, aspect, mean/max probability, fill), its surroundings (the map
    in a ring around it, whether it touches the frame, how many regions the cut made) and each side's edge (the map
    just inside and just outside it): what the scorer needs to tell a bird from a fragment or a merger, and what
    box regression needs to move the sides. All regions of a level are measured at once on a summed-area table.
    """
    fine, h, w = maps.fine, maps.height, maps.width
    step = CELL // UPSAMPLE * maps.scale  # original pixels per fine-map cell
    rows, cols = fine.shape
    table = np.zeros((rows + 1, cols + 1))
    table[1:, 1:] = fine.cumsum(axis=0).cumsum(axis=1)

    def box_sum(r0, r1, c0, c1):
        return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]

    out: list[Candidate] = []
    base_labels, base_count = ndimage.label(fine >= LEVELS[0])  # every region lies in one of these blobs
    blobs = np.array([(sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start)
                      for sl in ndimage.find_objects(base_labels)] or [1], dtype=float)
    for level in LEVELS:
        labels, count = ndimage.label(fine >= level)
        if count == 0:
            continue
        flat = labels.ravel()
        _, first = np.unique(flat, return_index=True)  # a pixel of each region (label 0 first)
        parent_area = blobs[base_labels.ravel()[first[1:]] - 1]
        sizes = np.bincount(flat, minlength=count + 1)[1:]
        means = np.bincount(flat, weights=fine.ravel(), minlength=count + 1)[1:] / np.maximum(sizes, 1)
        peaks = np.zeros(count + 1)
        np.maximum.at(peaks, flat, fine.ravel())
        spans = np.array([(sl[0].start, sl[0].stop, sl[1].start, sl[1].stop) for sl in ndimage.find_objects(labels)])
        keep = sizes >= 2
        if not keep.any():
            continue
        r0, r1, c0, c1 = spans[keep].T
        sizes, means, peaks, parent_area = sizes[keep], means[keep], peaks[1:][keep], parent_area[keep]
        height, width = r1 - r0, c1 - c0
        area = height * width
        pr, pc = np.maximum(1, height // 2), np.maximum(1, width // 2)
        o0, o1 = np.maximum(r0 - pr, 0), np.minimum(r1 + pr, rows)
        q0, q1 = np.maximum(c0 - pc, 0), np.minimum(c1 + pc, cols)
        inner = box_sum(r0, r1, c0, c1)
        ring = (box_sum(o0, o1, q0, q1) - inner) / np.maximum((o1 - o0) * (q1 - q0) - area, 1)
        left_out = np.where(c0 > 0, box_sum(r0, r1, np.maximum(c0 - 1, 0), np.maximum(c0, 1)), 0.0) / height
        right_out = np.where(c1 < cols, box_sum(r0, r1, np.minimum(c1, cols - 1), np.minimum(c1 + 1, cols)), 0.0)
        top_out = np.where(r0 > 0, box_sum(np.maximum(r0 - 1, 0), np.maximum(r0, 1), c0, c1), 0.0) / width
        bottom_out = np.where(r1 < rows, box_sum(np.minimum(r1, rows - 1), np.minimum(r1 + 1, rows), c0, c1), 0.0)
        x0, y0 = c0 * step, r0 * step
        x1, y1 = np.minimum(w, c1 * step), np.minimum(h, r1 * step)
        bw, bh = np.maximum(x1 - x0, 1), np.maximum(y1 - y0, 1)
        feats = np.stack(
            [
                np.full(len(r0), level),
                np.log(bw * bh / (h * w)),
                np.log(bw / bh),
                means,
                peaks,
                sizes / area,  # fill: how much of the box the region covers
                ring,
                ((x0 == 0) | (y0 == 0) | (x1 >= w) | (y1 >= h)).astype(float),
                np.full(len(r0), math.log1p(count)),
                np.log(np.maximum(bw, bh) / step),
                np.full(len(r0), math.log2(maps.scale)),
                np.log(area / parent_area),  # a part of a larger blob, or the blob itself
                np.log(parent_area / (rows * cols)),
                np.full(len(r0), math.log1p(base_count)),
                level / np.maximum(peaks, 1e-3),
                box_sum(r0, r1, c0, c0 + 1) / height,  # the map just inside and just outside each side
                left_out,
                box_sum(r0, r0 + 1, c0, c1) / width,
                top_out,
                box_sum(r0, r1, c1 - 1, c1) / height,
                right_out / height,
                box_sum(r1 - 1, r1, c0, c1) / width,
                bottom_out / width,
            ],
            axis=1,
        ).astype(np.float32)
        out.extend(
            Candidate((float(a), float(b), float(c), float(d)), f)
            for a, b, c, d, f in zip(x0, y0, x1, y1, feats, strict=True)
        )
    return out


def refine(cand: Candidate, offsets: np.ndarray, h: int, w: int) -> PixelBox:
    """Move the region's sides by regressed offsets (fractions of its width/height); a whole-pixel box in frame."""
    x0, y0, x1, y1 = cand.region
    bw, bh = x1 - x0, y1 - y0
    nx0, ny0 = x0 + offsets[0] * bw, y0 + offsets[1] * bh
    nx1, ny1 = x1 + offsets[2] * bw, y1 + offsets[3] * bh
    left, top = max(0, round(nx0)), max(0, round(ny0))
    right, bottom = min(w, round(nx1)), min(h, round(ny1))
    if right - left < 2 or bottom - top < 2:
        return (int(x0), int(y0), int(bw), int(bh))
    return (left, top, right - left, bottom - top)


def offsets_to(cand: Candidate, target: Sequence[float]) -> np.ndarray:
    """The regression target: how far each side of the region is from the target box's side."""
    x0, y0, x1, y1 = cand.region
    bw, bh = x1 - x0, y1 - y0
    tx, ty, tw, th = target
    return np.array([(tx - x0) / bw, (ty - y0) / bh, (tx + tw - x1) / bw, (ty + th - y1) / bh], dtype=np.float32)


def suppress(cands: list[Candidate], overlap: float = 0.5, inside: float = 0.7) -> list[Candidate]:
    """Non-maximum suppression: the best-scored candidate wins every candidate overlapping it by `overlap` IoU,
    or lying mostly (`inside`) within it, or holding it mostly within itself (a fragment or a merger of it)."""
    kept: list[Candidate] = []
    for c in sorted(cands, key=lambda c: -c.score):
        if all(not _clash(c.box, k.box, overlap, inside) for k in kept):
            kept.append(c)
    return kept


def _clash(a: PixelBox, b: PixelBox, overlap: float, inside: float) -> bool:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    small = min(a[2] * a[3], b[2] * b[3])
    return inter / small >= inside or iou(a, b) >= overlap


def image_features(maps: Maps, kept: list[Candidate], dropped: list[Candidate]) -> np.ndarray:
    """What the image-confidence model reads: how sure the boxes are and how much of the map they leave unexplained."""
    prob, h, w = maps.prob, maps.height, maps.width
    scores = np.array([c.score for c in kept]) if kept else np.zeros(1)
    explained = np.zeros_like(prob, dtype=bool)
    for c in kept:
        x, y, bw, bh = c.box
        explained[y // CELL : -(-(y + bh) // CELL), x // CELL : -(-(x + bw) // CELL)] = True
    loose = prob * ~explained
    smallest = min((c.box[2] * c.box[3] for c in kept), default=1)
    return np.array(
        [
            math.log1p(len(kept)),
            float(scores.min()) if kept else 0.0,
            float(scores.mean()) if kept else 0.0,
            max((c.score for c in dropped), default=0.0),
            float(loose.sum() / max(prob.sum(), 1e-6)),  # probability mass outside the boxes
            float(loose.max()),
            float(((prob > 0.25) & (prob < 0.75)).mean() / max((prob >= 0.5).mean(), 1e-3)),  # ambiguity
            math.log(max(smallest, 1) / (h * w)),
            float(not kept),
            float(np.log(np.clip(scores, 1e-3, 1)).sum()) if kept else math.log(1e-3),
        ],
        dtype=np.float32,
    )


# ----------------------------------------------------------------------------------------------------------------
# Small heads (fitted with scikit-learn, stored and evaluated as plain arrays)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Head:
    """A standardised regressor: ReLU layers (none for a linear model) then a linear output, as arrays."""

    mean: np.ndarray
    scale: np.ndarray
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mean) / self.scale
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = z @ weight + bias
            if k < len(self.weights) - 1:
                z = np.maximum(z, 0.0)
        return z

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, hidden: tuple[int, ...] = (), seed: int = 0) -> Head:
        """Ridge regression (no hidden layers) or a small perceptron regressor, on standardised inputs."""
        from sklearn.linear_model import Ridge
        from sklearn.neural_network import MLPRegressor

        mean = x.mean(axis=0)
        scale = x.std(axis=0) + 1e-6
        xs = (x - mean) / scale
        y2 = y.reshape(len(y), -1)
        if hidden:
            model = MLPRegressor(hidden_layer_sizes=hidden, alpha=1e-2, solver="lbfgs", max_iter=200, random_state=seed)
            model.fit(xs, y2 if y2.shape[1] > 1 else y2[:, 0])
            weights, biases = model.coefs_, model.intercepts_
        else:
            model = Ridge(alpha=3.0).fit(xs, y2)
            coef = np.asarray(model.coef_).reshape(y2.shape[1], -1).T
            weights, biases = [coef], [np.asarray(model.intercept_).ravel()]
        return cls(
            mean.astype(np.float32),
            scale.astype(np.float32),
            [np.asarray(wt, dtype=np.float32) for wt in weights],
            [np.asarray(b, dtype=np.float32) for b in biases],
        )

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        out = {f"{prefix}_mean": self.mean, f"{prefix}_scale": self.scale}
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"{prefix}_W{k}"] = weight
            out[f"{prefix}_b{k}"] = bias
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, np.ndarray], prefix: str, n_in: int, n_out: int) -> Head | None:
        if f"{prefix}_mean" not in data:
            return None
        weights, biases = [], []
        while f"{prefix}_W{len(weights)}" in data:
            weights.append(np.asarray(data[f"{prefix}_W{len(weights)}"], dtype=np.float32))
            biases.append(np.asarray(data[f"{prefix}_b{len(biases)}"], dtype=np.float32))
        head = cls(
            np.asarray(data[f"{prefix}_mean"], dtype=np.float32),
            np.asarray(data[f"{prefix}_scale"], dtype=np.float32),
            weights,
            biases,
        )
        _check_chain(prefix, head.mean.shape == head.scale.shape == (n_in,), weights, biases, n_in, n_out)
        return head


# ----------------------------------------------------------------------------------------------------------------
# The detector
# ----------------------------------------------------------------------------------------------------------------
HEADS = {  # name: (inputs, outputs)
    "regressor": (BOX_FEATURES, 4),
    "scorer": (BOX_FEATURES, 1),
    "confidence": (IMAGE_FEATURES, 1),
}


class Detector:
    """A bird detector: cell model, box regressor and scorer, operating point, image-confidence model."""

    def __init__(
        self,
        cells: CellModel,
        feature_mean: np.ndarray,
        feature_scale: np.ndarray,
        seed: int = 0,
        heads: dict[str, Head] | None = None,
        keep_threshold: float = 0.5,
        num_training_samples: int = 0,
        trained: bool = False,
    ) -> None:
        self.cells = cells
        self.feature_mean = feature_mean
        self.feature_scale = feature_scale
        self.seed = seed
        self.heads: dict[str, Head] = dict(heads or {})
        self.keep_threshold = keep_threshold
        self.num_training_samples = num_training_samples  # images given to the last fit
        self.trained = trained
        self._rng = np.random.default_rng(seed)

    # -- construction and storage --------------------------------------------------------------------------------
    @classmethod
    def new(cls, seed: int = 0) -> Detector:
        """An untrained detector (random weights; feature normalisation is fixed by its first training)."""
        rng = np.random.default_rng(seed)
        return cls(CellModel.initial(rng), np.zeros(FEATURES, np.float32), np.ones(FEATURES, np.float32), seed)

    def to_npz(self) -> bytes:
        """Weights and normalisation statistics as npz bytes (no pickled objects)."""
        arrays = {
            "format_version": np.int32(FORMAT_VERSION),
            "cell_size": np.int32(CELL),
            "seed": np.int64(self.seed),
            "trained": np.bool_(self.trained),
            "num_training_samples": np.int64(self.num_training_samples),
            "feature_mean": self.feature_mean,
            "feature_scale": self.feature_scale,
            "keep_threshold": np.float32(self.keep_threshold),
            **{f"cell_{k}": v for k, v in self.cells.params.items()},
        }
        for name, head in self.heads.items():
            arrays.update(head.arrays(name))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> Detector:
        """A detector from `to_npz` bytes; ValueError when the data is not such a model."""
        try:
            with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ValueError(f"model weights are not a readable npz archive: {exc}") from exc
        if "format_version" not in arrays:
            raise ValueError("model weights carry no format_version: not a detector saved by this emulator")
        if int(arrays["format_version"]) != FORMAT_VERSION:
            raise ValueError(
                f"model weights have format version {int(arrays['format_version'])}, "
                f"this emulator reads version {FORMAT_VERSION}"
            )
        try:
            if int(arrays["cell_size"]) != CELL:
                raise ValueError(f"model weights use {int(arrays['cell_size'])}-px cells, not {CELL}")
            params = {k[5:]: np.asarray(v, dtype=np.float32) for k, v in arrays.items() if k.startswith("cell_")}
            weights = [params.get(f"W{k}") for k in range(sum(1 for p in params if p.startswith("W")))]
            biases = [params.get(f"b{k}") for k in range(len(weights))]
            _check_chain("cell model", bool(weights), weights, biases, FEATURES, 1)
            mean = np.asarray(arrays["feature_mean"], dtype=np.float32)
            scale = np.asarray(arrays["feature_scale"], dtype=np.float32)
            if mean.shape != (FEATURES,) or scale.shape != (FEATURES,):
                raise ValueError("model weights: feature normalisation has the wrong shape")
            heads = {}
            for name, (n_in, n_out) in HEADS.items():
                head = Head.from_arrays(arrays, name, n_in, n_out)
                if head is not None:
                    heads[name] = head
            return cls(
                CellModel(params),
                mean,
                scale,
                seed=int(arrays["seed"]),
                heads=heads,
                keep_threshold=float(arrays["keep_threshold"]),
                num_training_samples=int(arrays["num_training_samples"]),
                trained=bool(arrays["trained"]),
            )
        except KeyError as exc:
            raise ValueError(f"model weights lack {exc.args[0]!r}") from exc

    # -- seeing -------------------------------------------------------------------------------------------------
    def _normalised(self, base: np.ndarray) -> np.ndarray:
        return ((context_features(base) - self.feature_mean) / self.feature_scale).reshape(-1, FEATURES)

    @one_blas_thread
    def maps(self, image: ImageInput) -> list[Maps]:
        """The cell model's view of an image at every scale: probability maps, finest first."""
        pyr = FEATURE_CACHE.get(image)
        out = []
        for scale, (base, _, _) in zip(SCALES, pyr.levels, strict=True):
            prob, _ = self.cells.forward(self._normalised(base))
            out.append(Maps(prob.reshape(base.shape[:2]), pyr.height, pyr.width, scale))
        return out

    def probability_map(self, image: ImageInput) -> np.ndarray:
        """Per-cell probability of lying inside a bird box at full scale, (rows, cols)."""
        return self.maps(image)[0].prob

    def _candidates(self, views: list[Maps]) -> list[Candidate]:
        return [c for view in views for c in candidates(view)]

    def _place(self, cands: list[Candidate], h: int, w: int) -> None:
        """Refine every candidate's box and predict its IoU with the bird it shows (its score)."""
        if not cands:
            return
        feats = np.stack([c.features for c in cands])
        regressor, scorer = self.heads.get("regressor"), self.heads.get("scorer")
        offsets = regressor(feats) if regressor is not None else np.zeros((len(cands), 4), np.float32)
        scores = scorer(feats)[:, 0] if scorer is not None else feats[:, 3]  # untrained: the region's mean
        for c, off, score in zip(cands, offsets, scores, strict=True):
            c.box = refine(c, off, h, w)
            c.score = float(np.clip(score, 0.0, 1.0))

    def _detect(self, views: list[Maps], cands: list[Candidate] | None = None):
        cands = self._candidates(views) if cands is None else cands
        self._place(cands, views[0].height, views[0].width)
        best = suppress(cands)
        return [c for c in best if c.score >= self.keep_threshold], [c for c in best if c.score < self.keep_threshold]

    def _confidence(self, views: list[Maps], kept: list[Candidate], dropped: list[Candidate]) -> float:
        feats = image_features(views[0], kept, dropped)
        head = self.heads.get("confidence")
        if head is None:
            return float(feats[1])  # the least sure box
        return float(np.clip(head(feats)[0, 0], 0.0, 1.0))

    @one_blas_thread
    def predict(self, image: ImageInput) -> Prediction:
        """Boxes and image confidence for one image (JPEG bytes or an RGB array)."""
        views = self.maps(image)
        kept, dropped = self._detect(views)
        boxes = [(c.box, round(c.score, 4)) for c in kept]
        return Prediction(boxes, round(self._confidence(views, kept, dropped), 4))

    # -- learning -----------------------------------------------------------------------------------------------
    @one_blas_thread
    def fit(
        self,
        images: Sequence[ImageInput],
        boxes: Sequence[Sequence[Sequence[float]]],
        epochs: int = 10,
        validation: tuple[Sequence[ImageInput], Sequence[Sequence[Sequence[float]]]] | None = None,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> Detector:
        """Train on images with their pixel boxes; continues from the current weights (a warm start when loaded).

        A fixed quarter of the images (by content hash) is held out of the cell model: its cell loss picks the best
        epoch's weights (early stopping), and it fits the box heads, the operating point and the image-confidence
        model. `on_epoch(epoch, validation_map)` is called after every epoch with AP at IoU 0.5 on (up to
        MAP_IMAGES of) `validation` = (images, boxes) when given.
        """
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box lists")
        if not images:
            raise ValueError("nothing to train on")
        rng = self._rng
        held = [content_hash(img) % 1000 < HOLDOUT_SHARE * 1000 for img in images]
        if sum(held) < 4 or sum(held) > len(images) - 4:  # tiny sets: hold out every fourth image instead
            held = [i % 4 == 3 for i in range(len(images))]
        train = [i for i in range(len(images)) if not held[i]]
        holdout = [i for i in range(len(images)) if held[i]]
        x, y, weight = self._training_cells([images[i] for i in train], [boxes[i] for i in train], rng)
        hx, hy, hw = self._training_cells([images[i] for i in holdout], [boxes[i] for i in holdout], rng, fit=False)
        if validation and validation[0]:
            stride = max(1, len(validation[0]) // MAP_IMAGES)
            val_images, val_boxes = list(validation[0])[::stride], list(validation[1])[::stride]
        best_loss, best = self.cells.loss(hx, hy, hw) if self.trained else math.inf, self.cells.snapshot()
        for epoch in range(epochs):
            self.cells.train_epoch(x, y, weight, rng)
            held_loss = self.cells.loss(hx, hy, hw)
            if held_loss < best_loss:
                best_loss, best = held_loss, self.cells.snapshot()
            if on_epoch is not None:
                score = mean_average_precision(self, val_images, val_boxes) if validation and validation[0] else 0.0
                on_epoch(epoch, round(score, 4))
        self.cells.params = best
        self._fit_heads(images, boxes)
        self.num_training_samples = len(images)
        self.trained = True
        return self

    def _training_cells(
        self,
        images: Sequence[ImageInput],
        boxes: Sequence[Sequence[Sequence[float]]],
        rng: np.random.Generator,
        fit: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cells to learn from: all near a box, plus far background sampled down (and weighted back up).

        With `fit`, the first training of a new model also fixes the feature normalisation (warm starts keep it).
        """
        feats, targets, near = [], [], []
        for img, bxs in zip(images, boxes, strict=True):
            for scale, (base, h, w) in zip(SCALES, FEATURE_CACHE.get(img).levels, strict=True):
                cov = coverage([[v / scale for v in box] for box in bxs], h, w)
                feats.append(context_features(base).reshape(-1, FEATURES))
                targets.append(cov.ravel())
                near.append(ndimage.maximum_filter(cov, size=5).ravel() > 0)
        x = np.concatenate(feats)
        y = np.concatenate(targets).astype(np.float32)
        close = np.concatenate(near)
        far_rate = min(1.0, max(0.05, (MAX_TRAIN_CELLS - close.sum()) / max((~close).sum(), 1)))
        pick = close | (rng.random(len(x)) < far_rate)
        weight = np.where(close, 1.0, 1.0 / far_rate).astype(np.float32)[pick]
        if fit and not self.trained:
            self.feature_mean = x.mean(axis=0).astype(np.float32)
            self.feature_scale = (x.std(axis=0) + 1e-4).astype(np.float32)
        x = ((x[pick] - self.feature_mean) / self.feature_scale).astype(np.float32)
        return x, y[pick], weight

    def _fit_heads(self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Sequence[float]]]) -> None:
        """Box regressor and scorer, operating point and image confidence, from images the cell model never saw."""
        seen = []
        for img, bxs in zip(images, boxes, strict=True):
            views = self.maps(img)
            seen.append((views, self._candidates(views), bxs))
        # Box regression: from each region to the box it overlaps best (when it clearly shows one).
        reg_x, reg_y = [], []
        for _, cands, bxs in seen:
            for c in cands:
                region = (c.region[0], c.region[1], c.region[2] - c.region[0], c.region[3] - c.region[1])
                overlap, target = max(((iou(region, b), b) for b in bxs), default=(0.0, None), key=lambda t: t[0])
                if target is not None and overlap >= REFINE_FROM:
                    reg_x.append(c.features)
                    reg_y.append(offsets_to(c, target))
        if len(reg_x) >= 20 and REFINE_FROM < 1:
            self.heads["regressor"] = Head.fit(np.stack(reg_x), np.clip(np.stack(reg_y), -0.5, 0.5))
        # Scoring: predict the IoU each refined box will have with the best-matching bird.
        score_x, score_y = [], []
        for views, cands, bxs in seen:
            self._place(cands, views[0].height, views[0].width)
            for c in cands:
                score_x.append(c.features)
                score_y.append(max((iou(c.box, b) for b in bxs), default=0.0))
        if len(score_x) >= 20:
            self.heads["scorer"] = Head.fit(np.stack(score_x), np.asarray(score_y), hidden=(32,), seed=self.seed)
        if not seen:
            return
        # NMS does not depend on the cut (a candidate below it can never suppress one above it): run it once.
        survivors = []
        for views, cands, bxs in seen:
            self._place(cands, views[0].height, views[0].width)
            survivors.append((views, suppress(cands), bxs))

        def quality(cut: float) -> float:
            return float(
                np.mean([image_miou([(c.box, c.score) for c in best if c.score >= cut], bxs) for _, best, bxs in survivors])
            )

        # The operating point: the score cut giving the best mean mIoU on the training images.
        grid = np.round(np.arange(0.15, 0.81, 0.05), 2)
        self.keep_threshold = float(grid[int(np.argmax([quality(cut) for cut in grid]))])
        feats, target = [], []
        for views, best, bxs in survivors:
            kept = [c for c in best if c.score >= self.keep_threshold]
            dropped = [c for c in best if c.score < self.keep_threshold]
            feats.append(image_features(views[0], kept, dropped))
            target.append(image_miou([(c.box, c.score) for c in kept], bxs))
        if len(feats) >= 8:
            self.heads["confidence"] = Head.fit(np.stack(feats), np.asarray(target))


def _check_chain(name: str, ok: bool, weights: list, biases: list, n_in: int, n_out: int) -> None:
    """ValueError unless the layers chain from `n_in` inputs to `n_out` outputs (what malformed weights break)."""
    if not ok or not weights or len(weights) != len(biases):
        raise ValueError(f"model weights: the {name} is malformed")
    width = n_in
    for weight, bias in zip(weights, biases, strict=True):
        if weight is None or bias is None or weight.ndim != 2 or weight.shape[0] != width or bias.shape != (
            weight.shape[1],
        ):
            raise ValueError(f"model weights: the {name} has a malformed layer")
        width = weight.shape[1]
    if width != n_out:
        raise ValueError(f"model weights: the {name} gives {width} outputs, not {n_out}")


# ----------------------------------------------------------------------------------------------------------------
# Evaluation and calibration
# ----------------------------------------------------------------------------------------------------------------
def average_precision(
    predictions: Sequence[Sequence[tuple[Sequence[float], float]]],
    references: Sequence[Sequence[Sequence[float]]],
    iou_threshold: float = 0.5,
) -> float:
    """AP at one IoU threshold over a set of images (all-point interpolated precision-recall area, as in VOC)."""
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0
    scored = []
    for img, (preds, refs) in enumerate(zip(predictions, references, strict=True)):
        for box, conf in preds:
            scored.append((conf, img, box))
    scored.sort(key=lambda t: -t[0])
    taken = [set() for _ in references]
    hits = np.zeros(len(scored))
    for k, (_, img, box) in enumerate(scored):
        best, best_j = 0.0, -1
        for j, ref in enumerate(references[img]):
            if j in taken[img]:
                continue
            overlap = iou(box, ref)
            if overlap > best:
                best, best_j = overlap, j
        if best >= iou_threshold:
            taken[img].add(best_j)
            hits[k] = 1
    if not len(scored):
        return 0.0
    tp = np.cumsum(hits)
    recall = tp / total
    precision = tp / np.arange(1, len(scored) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum())


def mean_average_precision(
    model: Detector, images: Sequence[ImageInput], boxes: Sequence[Sequence[Sequence[float]]]
) -> float:
    """The detector's validation mAP (one class, so AP) at IoU 0.5 on images with reference boxes."""
    return average_precision([model.predict(img).boxes for img in images], boxes)


def calibrate_threshold(
    confidences: Sequence[float], mious: Sequence[float], target: float = 0.6, min_count: int = 10, z: float = 1.0
) -> float | None:
    """The lowest confidence threshold whose validation images (those at or above it) meet the quality target.

    The quality of a threshold is judged conservatively — the mean mIoU of the images at or above it minus `z`
    standard errors must reach `target`, over at least `min_count` images — because the threshold is chosen on the
    same few hundred images it is judged on, and auto-labels are meant to meet the target, not to scrape past it on
    a lucky sample. None when no threshold qualifies (the round auto-labels nothing).
    """
    conf = np.asarray(confidences, dtype=float)
    quality = np.asarray(mious, dtype=float)
    if conf.shape != quality.shape:
        raise ValueError("one mIoU per confidence is needed")
    order = np.argsort(-conf, kind="stable")
    conf, quality = conf[order], quality[order]
    n = np.arange(1, len(conf) + 1)
    mean = np.cumsum(quality) / n
    var = np.maximum(np.cumsum(quality**2) / n - mean**2, 0.0)
    lower = mean - z * np.sqrt(var / np.maximum(n - 1, 1))
    best = None
    for k in range(len(conf)):
        last_of_tie = k == len(conf) - 1 or conf[k + 1] < conf[k]  # a threshold takes every image at its level
        if last_of_tie and n[k] >= min_count and lower[k] >= target:
            best = float(conf[k])
    return best
