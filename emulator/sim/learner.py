"""The auto-labeling model: a small object detector trained on the images' pixels, on CPU, in seconds.

How it sees (everything learned from the human labels it is given; nothing about the synthetic scenes is built in):
1. **Cell features.** The image and its half-size copy are cut into 8x8-pixel cells. Each cell gets colour (RGB,
   opponent colours, saturation, colour variety), brightness and its spread, oriented gradient energy, fine texture
   and where in the cell it is bright — and the same pooled over 3x3, 7x7 and 15x15 cells and the whole image, so a
   cell also knows its surroundings ("brown, finely textured, on a smooth blue field"). Cached per image content.
2. **Cell model.** A two-hidden-layer perceptron (numpy, Adam) predicts how much of each cell lies inside a bird
   box, at both scales (a large bird at half size looks like a medium one). It trains epoch by epoch, so a loaded
   model keeps learning from its weights: a real warm start, fine-tuned gently (lower learning rate, weights decaying
   towards the pretrained ones rather than towards zero).
3. **Proposals.** Each probability map, upsampled to half-cell resolution, is cut at three levels; every connected
   region is a candidate box, described by its shape, the map inside, around and along each side, and how its
   colour and texture differ from its surroundings.
4. **Scorer.** A small perceptron predicts each candidate's IoU with the bird it shows; non-maximum suppression
   (which also removes fragments and mergers of a better box), then the candidates above a learned operating point.
5. **Image confidence.** A ridge model predicts the image's mIoU from what the prediction looks like: how sure the
   boxes are, how many blobs the maps hold for the boxes kept, how much probability is left unexplained, whether a
   box holds separate peaks. Labeling jobs calibrate their auto-labeling threshold on exactly this number
   (`calibrate_threshold`).

The scorer and the confidence model must learn from the kind of maps the detector meets on new images, not from its
memory of its training images: they are fitted on out-of-fold maps (two-fold cross-fitting) and, for the confidence,
also on the validation images — whose own confidences, the ones a job calibrates on, come from heads fitted without
them (`calibration_confidence`). Training keeps the epoch with the lowest validation cell loss (early stopping).

Weights travel as npz (`to_npz` / `from_npz`, `allow_pickle=False`): arrays and a format version, nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import math
import threading
import warnings
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
LEVELS = (0.25, 0.45, 0.65)  # cuts of the probability map that propose regions
HIDDEN = (48, 24)
HOLDOUT_SHARE = 0.25
MAX_TRAIN_CELLS = 160_000  # cells per epoch: every cell near a box, and a weighted sample of far background
BATCH = 2048
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
ANCHOR_STRENGTH = 10.0  # L2-SP: fine-tuned weights are pulled to the pretrained ones 10x harder than to 0
MAP_IMAGES = 32  # validation images scored for the per-epoch mAP log line

PixelBox = tuple[int, int, int, int]
ImageInput = bytes | bytearray | memoryview | np.ndarray


_BLAS = threading.Lock()
_BLAS_STATE: dict = {"users": 0, "limiter": None, "controller": None}


def one_blas_thread(fn: Callable) -> Callable:
    """Run `fn` with single-threaded BLAS: the matrices here are small, and on a busy two-core machine BLAS threads
    only fight each other (a 20x slowdown measured); single-threaded, the learner stays predictable.

    The limit is process-wide, so it is counted: the first caller (of any thread) sets it, the last one restores it.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _BLAS:
            if _BLAS_STATE["users"] == 0:
                if _BLAS_STATE["controller"] is None:
                    _BLAS_STATE["controller"] = ThreadpoolController()
                _BLAS_STATE["limiter"] = _BLAS_STATE["controller"].limit(limits=1, user_api="blas")
            _BLAS_STATE["users"] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with _BLAS:
                _BLAS_STATE["users"] -= 1
                if _BLAS_STATE["users"] == 0:
                    _BLAS_STATE["limiter"].restore_original_limits()

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

    def __init__(self, capacity: int = 3000) -> None:
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
        x0, y0 = max(0, round(x)), max(0, round(y))
        x1, y1 = min(w, round(x + bw)), min(h, round(y + bh))
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
        self.learning_rate = LEARNING_RATE
        self.anchor: dict[str, np.ndarray] | None = None  # fine-tuning: weights decay towards these, not to zero
        self._adam: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._step = 0

    @classmethod
    def initial(cls, rng: np.random.Generator, n_in: int = FEATURES, hidden: tuple[int, ...] = HIDDEN) -> CellModel:
        sizes = (n_in, *hidden, 1)
        params = {}
        for k, (a, b) in enumerate(itertools.pairwise(sizes)):
            params[f"W{k}"] = (rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32)
            params[f"b{k}"] = np.zeros(b, dtype=np.float32)
        params[f"b{len(sizes) - 2}"][:] = -2.0  # birds cover a small share of cells: start from that prior
        return cls(params)

    @property
    def layers(self) -> int:
        return sum(1 for k in self.params if k.startswith("W"))

    def _activations(self, x: np.ndarray) -> list[np.ndarray]:
        acts = [x]
        for k in range(self.layers):
            z = acts[-1] @ self.params[f"W{k}"] + self.params[f"b{k}"]
            acts.append(np.maximum(z, 0.0) if k < self.layers - 1 else z)
        return acts

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The probability of each row (cell) lying inside a bird box."""
        return _sigmoid(self._activations(x)[-1][:, 0])

    def loss(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> float:
        """Weighted binary cross-entropy (the early-stopping criterion)."""
        p = self.forward(x)
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
                anchor = self.anchor.get(f"W{k}") if self.anchor else None
                decay = self.params[f"W{k}"] if anchor is None else (self.params[f"W{k}"] - anchor) * ANCHOR_STRENGTH
                grads[f"W{k}"] = acts[k].T @ grad + WEIGHT_DECAY * decay
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
            self.params[name] -= (self.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


# ----------------------------------------------------------------------------------------------------------------
# Maps -> candidate boxes, and the features the heads read
# ----------------------------------------------------------------------------------------------------------------
BOX_FEATURES = 23 + 3 * 5
IMAGE_FEATURES = 18 + 2 * len(SCALES)


@dataclass
class Maps:
    """What the cell model sees at one scale: the probability map (rows, cols), the scale, the image's full size."""

    prob: np.ndarray
    height: int
    width: int
    scale: int = 1
    looks: np.ndarray | None = None  # (rows, cols, k) appearance channels of the cells, for region contrast

    @cached_property
    def fine(self) -> np.ndarray:
        """The probability map at CELL / UPSAMPLE px resolution, bilinear-like (repeat, then a small box filter)."""
        fine = np.repeat(np.repeat(self.prob, UPSAMPLE, axis=0), UPSAMPLE, axis=1)
        return ndimage.uniform_filter(fine, size=UPSAMPLE + 1, mode="nearest")


@dataclass
class Candidate:
    """A proposed box: the region's bounding box and features, then its pixel box and score (predicted IoU)."""

    region: tuple[float, float, float, float]  # x0, y0, x1, y1 of the region, pixels
    features: np.ndarray
    box: PixelBox = (0, 0, 0, 0)
    score: float = 0.0


def candidates(maps: Maps) -> list[Candidate]:
    """Connected regions of the probability map at each cut level, with features for the box heads.

    The features describe the region (level, size, aspect, mean/max probability, fill), its surroundings (the map
    in a ring around it, whether it touches the frame, how many regions the cut made) and each side's edge (the map
    just inside and just outside it), and how the region's colour and texture differ from the ring around it: what
    the scorer needs to tell a bird from a fragment, a merger or a distractor, and a snug box from a loose one. All
    regions of a level are measured at once on summed-area tables.
    """
    fine, h, w = maps.fine, maps.height, maps.width
    step = CELL // UPSAMPLE * maps.scale  # original pixels per fine-map cell
    rows, cols = fine.shape
    table = np.zeros((rows + 1, cols + 1))
    table[1:, 1:] = fine.cumsum(axis=0).cumsum(axis=1)

    def box_sum(r0, r1, c0, c1):
        return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]

    out: list[Candidate] = []
    values = fine.ravel()
    rising = np.argsort(values, kind="stable")  # assigning in this order leaves each region's maximum
    position = np.arange(len(values))
    base_labels, base_count = ndimage.label(fine >= LEVELS[0])  # every region lies in one of these blobs
    blobs = np.array(
        [(sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start) for sl in ndimage.find_objects(base_labels)] or [1],
        dtype=float,
    )
    looks_table = None
    if maps.looks is not None:
        looks_table = np.zeros((maps.looks.shape[0] + 1, maps.looks.shape[1] + 1, maps.looks.shape[2]))
        looks_table[1:, 1:] = maps.looks.cumsum(axis=0).cumsum(axis=1)
    for level in LEVELS:
        labels, count = ndimage.label(fine >= level)
        if count == 0:
            continue
        flat = labels.ravel()
        first = np.zeros(count + 1, dtype=np.intp)
        first[flat[::-1]] = position[::-1]  # a pixel of each region (its first in raster order)
        parent_area = blobs[base_labels.ravel()[first[1:]] - 1]
        sizes = np.bincount(flat, minlength=count + 1)[1:]
        means = np.bincount(flat, weights=values, minlength=count + 1)[1:] / np.maximum(sizes, 1)
        peaks = np.zeros(count + 1)
        peaks[flat[rising]] = values[rising]
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
        if looks_table is not None:
            feats = np.concatenate([feats, contrast(looks_table, r0, r1, c0, c1)], axis=1)
        out.extend(
            Candidate((float(a), float(b), float(c), float(d)), f)
            for a, b, c, d, f in zip(x0, y0, x1, y1, feats, strict=True)
        )
    return out


LOOKS = (0, 1, 2, 8, 13)  # base-feature channels compared inside and around a region: colour, edges, fine texture


def contrast(table: np.ndarray, r0, r1, c0, c1) -> np.ndarray:
    """How the cells inside regions (fine-map spans) differ from the ring around them, per appearance channel.

    `table` is the summed-area table of the cells' appearance channels. A box that fits has the bird inside and
    plain background around it; a fragment has more bird around it, a merger more background inside. Returns
    (regions, 3k): inside means, ring means, absolute differences.
    """
    rows, cols = table.shape[0] - 1, table.shape[1] - 1
    a0, a1 = r0 // UPSAMPLE, np.maximum(-(-r1 // UPSAMPLE), r0 // UPSAMPLE + 1)  # spans in cells
    b0, b1 = c0 // UPSAMPLE, np.maximum(-(-c1 // UPSAMPLE), c0 // UPSAMPLE + 1)
    a1, b1 = np.minimum(a1, rows), np.minimum(b1, cols)
    pr, pc = np.maximum(1, (a1 - a0) // 2), np.maximum(1, (b1 - b0) // 2)
    o0, o1, q0, q1 = (
        np.maximum(a0 - pr, 0),
        np.minimum(a1 + pr, rows),
        np.maximum(b0 - pc, 0),
        np.minimum(b1 + pc, cols),
    )

    def box_sum(t0, t1, s0, s1):
        return table[t1, s1] - table[t0, s1] - table[t1, s0] + table[t0, s0]

    area = ((a1 - a0) * (b1 - b0))[:, None]
    inner = box_sum(a0, a1, b0, b1)
    ring = (box_sum(o0, o1, q0, q1) - inner) / np.maximum(((o1 - o0) * (q1 - q0))[:, None] - area, 1)
    inner = inner / area
    return np.concatenate([inner, ring, np.abs(inner - ring)], axis=1).astype(np.float32)


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


def image_features(
    views: list[Maps], kept: list[Candidate], dropped: list[Candidate], cands: Sequence[Candidate] = ()
) -> np.ndarray:
    """What the image-confidence model reads: how sure the boxes are, how many blobs the maps hold compared with the
    boxes kept, how much probability the boxes leave unexplained, and whether a kept box holds several separate
    peaks of the map (two touching birds boxed as one)."""
    prob, h, w = views[0].prob, views[0].height, views[0].width
    scores = sorted((c.score for c in kept), reverse=True)
    explained = np.zeros_like(prob, dtype=bool)
    for c in kept:
        x, y, bw, bh = c.box
        explained[y // CELL : -(-(y + bh) // CELL), x // CELL : -(-(x + bw) // CELL)] = True
    loose = prob * ~explained
    areas = [c.box[2] * c.box[3] / (h * w) for c in kept]
    blobs = [ndimage.label(view.prob >= 0.3)[1] for view in views]
    best_dropped = max((c.score for c in dropped), default=0.0)
    return np.array(
        [
            math.log1p(len(kept)),
            scores[-1] if kept else 0.0,
            float(np.mean(scores)) if kept else 0.0,
            scores[0] if kept else 0.0,
            scores[1] if len(kept) > 1 else 0.0,
            best_dropped,
            best_dropped - (scores[-1] if kept else 0.0),
            math.log1p(len(dropped)),
            float(loose.sum() / max(prob.sum(), 1e-6)),  # probability mass outside the boxes
            float(loose.max()),
            float(((prob > 0.25) & (prob < 0.75)).mean() / max((prob >= 0.5).mean(), 1e-3)),  # ambiguity
            float((prob > 0.5).mean()),
            math.log(max(min(areas, default=0.0), 1e-4)),
            max(areas, default=0.0),
            float(not kept),
            float(np.log(np.clip(scores, 1e-3, 1)).sum()) if kept else math.log(1e-3),
            *(math.log1p(n) for n in blobs),
            len(kept) - blobs[0],
            *(float(view.prob.max()) for view in views),
            math.log1p(max((_peaks_inside(c, cands) for c in kept), default=0)),
        ],
        dtype=np.float32,
    )


def _peaks_inside(box: Candidate, cands: Sequence[Candidate]) -> int:
    """Regions of the highest cut lying inside a box: more than one suggests a merger of separate birds."""
    x, y, bw, bh = box.box
    return sum(
        1
        for c in cands
        if c.features[0] == LEVELS[-1]
        and c.region[0] >= x
        and c.region[1] >= y
        and c.region[2] <= x + bw
        and c.region[3] <= y + bh
    )


# ----------------------------------------------------------------------------------------------------------------
# Small heads (fitted with scikit-learn, stored and evaluated as plain arrays)
# ----------------------------------------------------------------------------------------------------------------
def _quiet_lbfgs_cap() -> None:
    """Silence scikit-learn's "lbfgs failed to converge" for the heads: their iteration cap is deliberate.

    One process-wide filter, installed once: `warnings.catch_warnings` around each fit is not thread-safe, and jobs
    train on several threads at once."""
    warnings.filterwarnings("ignore", message="lbfgs failed to converge", module="sklearn")


_quiet_lbfgs_cap()


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
        if hidden:  # a capped number of L-BFGS iterations is the regulariser (see _quiet_lbfgs_cap)
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
    "scorer": (BOX_FEATURES, 1),
    "confidence": (IMAGE_FEATURES, 1),
}


class Detector:
    """A bird detector: cell model, candidate scorer, operating point and image-confidence model (see the module).

    `Detector.new(seed)` starts untrained; `fit` trains (warm when already trained or loaded); `predict` labels one
    image; `to_npz` / `from_npz` store and load it. `num_training_samples` is the number of images the last `fit`
    was given (what the training log reports).
    """

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
        # content hash -> held-out confidence of the last fit's validation images (in memory only)
        self.calibration_confidences: dict[int, float] = {}

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
            params = {
                k[5:]: np.asarray(v, dtype=np.float32)
                for k, v in arrays.items()
                if k.startswith(("cell_W", "cell_b")) and k[6:].isdigit()
            }
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
    def maps(self, image: ImageInput, cells: CellModel | None = None) -> list[Maps]:
        """The cell model's (or `cells`') view of an image at every scale: probability maps, finest first."""
        pyr = FEATURE_CACHE.get(image)
        model = cells or self.cells
        out = []
        for scale, (base, _, _) in zip(SCALES, pyr.levels, strict=True):
            prob = model.forward(self._normalised(base))
            looks = base[..., list(LOOKS)].astype(np.float32)
            out.append(Maps(prob.reshape(base.shape[:2]), pyr.height, pyr.width, scale, looks))
        return out

    def probability_map(self, image: ImageInput) -> np.ndarray:
        """Per-cell probability of lying inside a bird box at full scale, (rows, cols)."""
        return self.maps(image)[0].prob

    def _candidates(self, views: list[Maps]) -> list[Candidate]:
        return [c for view in views for c in candidates(view)]

    def _place(self, cands: list[Candidate]) -> None:
        """Give every candidate its box and its score: the IoU the scorer expects it to have with a bird."""
        if not cands:
            return
        scorer = self.heads.get("scorer")
        feats = np.stack([c.features for c in cands])
        scores = scorer(feats)[:, 0] if scorer is not None else feats[:, 3]  # untrained: the region's mean
        for c, score in zip(cands, scores, strict=True):
            x0, y0, x1, y1 = c.region
            c.box = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
            c.score = float(np.clip(score, 0.0, 1.0))

    def _detect(self, views: list[Maps], cands: list[Candidate] | None = None):
        """(kept, dropped, all candidates): non-maximum suppression, then the operating point."""
        cands = self._candidates(views) if cands is None else cands
        self._place(cands)
        best = suppress(cands)
        cut = self.keep_threshold
        return [c for c in best if c.score >= cut], [c for c in best if c.score < cut], cands

    def _confidence(self, views: list[Maps], kept: list[Candidate], dropped: list[Candidate], cands) -> float:
        feats = image_features(views, kept, dropped, cands)
        head = self.heads.get("confidence")
        if head is None:
            return float(feats[1])  # the least sure box
        return float(np.clip(head(feats)[0, 0], 0.0, 1.0))

    @one_blas_thread
    def predict(self, image: ImageInput) -> Prediction:
        """Boxes and image confidence for one image (JPEG bytes or an RGB array)."""
        views = self.maps(image)
        kept, dropped, cands = self._detect(views)
        boxes = [(c.box, round(c.score, 4)) for c in kept]
        return Prediction(boxes, round(self._confidence(views, kept, dropped, cands), 4))

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
        """Train on `images` (JPEG bytes or RGB arrays) with their pixel `boxes`; continues from the current weights.

        The cell model trains for `epochs` passes over its cells; the epoch whose weights give the lowest cell loss on
        the validation images (or, without them, on a quarter of the training images held out by content hash) is
        kept — early stopping, as SageMaker's built-in algorithms do on their validation channel: the best epoch of
        this run, also when a fine-tuning run on a small, hard batch never gets back below where it started (a
        warm-started job keeps learning from its own labels instead of freezing at the model it was given). Then
        the scorer, the operating point and the image-confidence model are refitted (see `_out_of_fold` and
        `_fit_heads`).
        `on_epoch(epoch, validation_map)` is called after every epoch with the AP at IoU 0.5 on (up to MAP_IMAGES
        of) the `validation` = (images, boxes) pair, 0.0 without one — the `validation mAP` of the training log.
        """
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box lists")
        if not images:
            raise ValueError("nothing to train on")
        rng = self._rng
        val = (list(validation[0]), list(validation[1])) if validation and len(validation[0]) else None
        if val is not None:
            train, stop_images, stop_boxes = list(range(len(images))), val[0], val[1]
        else:
            held = [content_hash(img) % 1000 < HOLDOUT_SHARE * 1000 for img in images]
            if sum(held) < 2 or sum(held) > len(images) - 2:  # tiny sets: hold out every fourth image instead
                held = [i % 4 == 3 for i in range(len(images))]
            train = [i for i in range(len(images)) if not held[i]]
            stop_images = [images[i] for i in range(len(images)) if held[i]]
            stop_boxes = [boxes[i] for i in range(len(images)) if held[i]]
        start = self.cells.snapshot() if self.trained else None
        # Fine-tuning: a gentler learning rate, and weight decay towards the pretrained weights (L2-SP) instead of
        # towards zero, so a small, hard batch adds to what the model knows rather than overwriting it.
        self.cells.learning_rate = LEARNING_RATE / 3 if self.trained else LEARNING_RATE
        self.cells.anchor = self.cells.snapshot() if self.trained else None
        samples = self._cell_samples(images, boxes, rng)
        x, y, weight = self._stacked([samples[i] for i in train], fix_normalisation=not self.trained)
        sx, sy, sw = self._stacked(self._cell_samples(stop_images, stop_boxes, rng))
        best_loss, best, best_epochs = math.inf, self.cells.snapshot(), 0
        for epoch in range(epochs):
            self.cells.train_epoch(x, y, weight, rng)
            loss = self.cells.loss(sx, sy, sw)
            if loss < best_loss:
                best_loss, best, best_epochs = loss, self.cells.snapshot(), epoch + 1
            if on_epoch is not None:
                on_epoch(epoch, round(self._validation_map(val), 4) if val is not None else 0.0)
        self.cells.params = best
        views = self._out_of_fold(images, samples, max(best_epochs, 1), start, rng)
        self._fit_heads(views, boxes, val)
        self.num_training_samples = len(images)
        self.trained = True
        return self

    def _out_of_fold(
        self,
        images: Sequence[ImageInput],
        samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
        epochs: int,
        start: dict[str, np.ndarray] | None,
        rng: np.random.Generator,
    ) -> list[list[Maps]]:
        """Every training image as a cell model sees it that did not train on it (two-fold cross-fitting).

        The heads must learn from the kind of probability maps the detector will meet on new images; on its own
        training images the cell model's maps are too clean (it remembers them). So two models, each trained like
        the real one (same start, same epochs) on half of the images, draw the maps of the other half.
        """
        views: list[list[Maps]] = [[] for _ in images]
        folds = [list(range(k, len(images), 2)) for k in (0, 1)]
        for fold, other in ((folds[0], folds[1]), (folds[1], folds[0])):
            if not fold or not other:
                continue
            model = CellModel({k: v.copy() for k, v in start.items()}) if start else CellModel.initial(rng)
            model.learning_rate, model.anchor = self.cells.learning_rate, self.cells.anchor
            x, y, weight = self._stacked([samples[i] for i in other])
            for _ in range(epochs):
                model.train_epoch(x, y, weight, rng)
            for i in fold:
                views[i] = self.maps(images[i], model)
        return views

    def _validation_map(self, val: tuple[list, list]) -> float:
        """AP at IoU 0.5 on an evenly spaced subset of the validation images (the per-epoch log line)."""
        stride = max(1, len(val[0]) // MAP_IMAGES)
        return mean_average_precision(self, val[0][::stride], val[1][::stride])

    def _cell_samples(
        self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Sequence[float]]], rng: np.random.Generator
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per image: the cells to learn from (raw features, targets, weights), every scale together.

        Every cell near a box is kept; far background is sampled down to keep about MAX_TRAIN_CELLS in all, and
        weighted back up so the loss still sees the true balance of bird and background.
        """
        targets = []
        for img, bxs in zip(images, boxes, strict=True):
            covs = [
                coverage([[v / scale for v in box] for box in bxs], h, w)
                for scale, (_, h, w) in zip(SCALES, FEATURE_CACHE.get(img).levels, strict=True)
            ]
            cov = np.concatenate([c.ravel() for c in covs])
            near = np.concatenate([ndimage.maximum_filter(c, size=5).ravel() > 0 for c in covs])
            targets.append((cov.astype(np.float32), near))
        n_near = sum(int(near.sum()) for _, near in targets)
        n_far = sum(int((~near).sum()) for _, near in targets)
        far_rate = min(1.0, max(0.05, (MAX_TRAIN_CELLS - n_near) / max(n_far, 1)))
        out = []
        for img, (cov, near) in zip(images, targets, strict=True):
            feats = np.concatenate(
                [context_features(base).reshape(-1, FEATURES) for base, _, _ in FEATURE_CACHE.get(img).levels]
            )
            pick = near | (rng.random(len(cov)) < far_rate)
            weight = np.where(near, 1.0, 1.0 / far_rate).astype(np.float32)
            out.append((feats[pick], cov[pick], weight[pick]))
        return out

    def _stacked(
        self, samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]], fix_normalisation: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples of several images as one normalised training set (optionally fixing the normalisation first)."""
        x = np.concatenate([s[0] for s in samples])
        y = np.concatenate([s[1] for s in samples])
        weight = np.concatenate([s[2] for s in samples])
        if fix_normalisation:
            mean = np.average(x, axis=0, weights=weight)
            self.feature_mean = mean.astype(np.float32)
            self.feature_scale = (np.sqrt(np.average((x - mean) ** 2, axis=0, weights=weight)) + 1e-4).astype(
                np.float32
            )
        return ((x - self.feature_mean) / self.feature_scale).astype(np.float32), y, weight

    def _fit_heads(
        self,
        views: list[list[Maps]],
        boxes: Sequence[Sequence[Sequence[float]]],
        validation: tuple[list, list] | None = None,
    ) -> None:
        """Box scorer and operating point from out-of-fold views of the training images; the image-confidence model
        from those and, when given, the validation images as the finished model sees them (held-out human labels:
        exactly the images the confidence must rank when the job calibrates its threshold)."""
        self.calibration_confidences = {}
        seen = [(v, self._candidates(v), bxs) for v, bxs in zip(views, boxes, strict=True) if v]
        # Scoring: predict the IoU each region's box has with the best-matching bird.
        score_x, score_y = [], []
        for _, cands, bxs in seen:
            self._place(cands)
            for c in cands:
                score_x.append(c.features)
                score_y.append(max((iou(c.box, b) for b in bxs), default=0.0))
        if len(score_x) >= 20:
            self.heads["scorer"] = Head.fit(np.stack(score_x), np.asarray(score_y), hidden=(32,), seed=self.seed)
        if not seen:
            return
        # NMS does not depend on the cut (a candidate below it can never suppress one above it): run it once.
        survivors = []
        for views_, cands, bxs in seen:
            self._place(cands)
            survivors.append((views_, suppress(cands), bxs, cands))

        def quality(cut: float) -> float:
            return float(
                np.mean(
                    [
                        image_miou([(c.box, c.score) for c in best if c.score >= cut], bxs)
                        for _, best, bxs, _ in survivors
                    ]
                )
            )

        # The operating point: the score cut giving the best mean mIoU on the training images.
        grid = np.round(np.arange(0.15, 0.81, 0.05), 2)
        self.keep_threshold = float(grid[int(np.argmax([quality(cut) for cut in grid]))])
        feats, target = [], []
        for views_, best, bxs, cands in survivors:
            kept = [c for c in best if c.score >= self.keep_threshold]
            dropped = [c for c in best if c.score < self.keep_threshold]
            feats.append(image_features(views_, kept, dropped, cands))
            target.append(image_miou([(c.box, c.score) for c in kept], bxs))
        val_feats, val_target, val_keys = [], [], []
        for img, bxs in zip(*(validation or ([], [])), strict=True):
            seen_views = self.maps(img)
            kept, dropped, cands = self._detect(seen_views)
            val_feats.append(image_features(seen_views, kept, dropped, cands))
            val_target.append(image_miou([(c.box, c.score) for c in kept], bxs))
            val_keys.append(content_hash(img))
        if len(feats) + len(val_feats) >= 8:
            self.heads["confidence"] = Head.fit(np.stack(feats + val_feats), np.asarray(target + val_target))
        if len(feats) >= 8 and len(val_feats) >= 2:
            # The validation images are the ones the job calibrates on, so their confidences must come from heads
            # that did not learn from them: each half is scored by a head fitted without it (cross-fitting).
            # Otherwise a job judges its threshold on images its confidence model has memorised, and auto-labels
            # more, and worse, than the target allows.
            for fold in (0, 1):
                held = list(range(fold, len(val_feats), 2))
                used = [i for i in range(len(val_feats)) if i % 2 != fold]
                head = Head.fit(
                    np.stack(feats + [val_feats[i] for i in used]),
                    np.asarray(target + [val_target[i] for i in used]),
                )
                scores = np.clip(head(np.stack([val_feats[i] for i in held]))[:, 0], 0.0, 1.0)
                for i, score in zip(held, scores, strict=True):
                    self.calibration_confidences[val_keys[i]] = round(float(score), 4)

    def calibration_confidence(self, image: ImageInput, prediction: Prediction | None = None) -> float:
        """The image's confidence for calibrating a threshold: for a validation image of the last `fit`, from a
        confidence head that never saw it (see `_fit_heads`); for any other image, `predict`'s (pass `prediction`
        when the image was just predicted, so it is not predicted again)."""
        held_out = self.calibration_confidences.get(content_hash(image))
        if held_out is not None:
            return held_out
        return (prediction or self.predict(image)).confidence


def _check_chain(name: str, ok: bool, weights: list, biases: list, n_in: int, n_out: int) -> None:
    """ValueError unless the layers chain from `n_in` inputs to `n_out` outputs (what malformed weights break)."""
    if not ok or not weights or len(weights) != len(biases):
        raise ValueError(f"model weights: the {name} is malformed")
    width = n_in
    for weight, bias in zip(weights, biases, strict=True):
        if (
            weight is None
            or bias is None
            or weight.ndim != 2
            or weight.shape[0] != width
            or bias.shape != (weight.shape[1],)
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
    for img, (preds, _refs) in enumerate(zip(predictions, references, strict=True)):
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
    confidences: Sequence[float],
    mious: Sequence[float],
    target: float = 0.6,
    min_count: int = 20,
    z: float = 1.28,
    pending: Sequence[float] | None = None,
) -> float | None:
    """The lowest confidence threshold whose validation images (those at or above it) meet the quality target.

    `confidences` and `mious` are the model's image confidence and the image's mIoU against the human labels, one
    per validation image. A threshold qualifies when the images at or above it, at least `min_count` of them, have
    a mean mIoU whose conservative estimate (the mean minus `z` standard errors) reaches `target`: the threshold is
    chosen on the same few hundred images it is judged on, and auto-labels are meant to meet the target, not to
    scrape past it on a lucky sample.

    `pending`, the confidences of the objects this threshold will be applied to, makes the calibration aim at the
    quality of the auto-labels themselves: after the first round the unlabeled objects are the hard leftovers, so
    the validation images above a threshold are a kinder crowd than the pending ones above it. The expected mIoU
    of each pending object is read off the validation images (mIoU as a non-decreasing function of confidence,
    isotonic regression), and the expected mean over the pending objects the threshold selects must also reach
    the target. None when no threshold qualifies (the round auto-labels nothing).
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
    margin = z * np.sqrt(var / np.maximum(n - 1, 1))
    expected = _expected_pending_quality(conf, quality, pending)
    best = None
    for k in range(len(conf)):
        last_of_tie = k == len(conf) - 1 or conf[k + 1] < conf[k]  # a threshold takes every image at its level
        if not (last_of_tie and n[k] >= min_count and mean[k] - margin[k] >= target):
            continue
        if expected is not None and expected(conf[k]) - margin[k] < target:
            continue
        best = float(conf[k])
    return best


def _expected_pending_quality(
    conf: np.ndarray, quality: np.ndarray, pending: Sequence[float] | None
) -> Callable[[float], float] | None:
    """threshold -> expected mean mIoU of the pending objects at or above it (None without pending objects)."""
    if pending is None or len(conf) < 2:
        return None
    from sklearn.isotonic import IsotonicRegression

    curve = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(conf, quality)
    pool = np.sort(np.asarray(pending, dtype=float))[::-1]
    if not len(pool):
        return None
    running = np.cumsum(curve.predict(pool)) / np.arange(1, len(pool) + 1)

    def expected(threshold: float) -> float:
        taken = int(np.searchsorted(-pool, -threshold, side="right"))  # pending objects at or above threshold
        return float(running[taken - 1]) if taken else math.inf

    return expected
