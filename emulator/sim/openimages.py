"""The synthetic Open Images mirror: bird photographs (and others) with reference boxes, in the real files' shapes.

`seed_openimages` fills an S3 bucket the way the public `open-images-dataset` bucket looks to the seed notebook:
- `test/<16-hex ImageID>.jpg` — N bird photographs of at most 6 MB, plus photographs without birds (about 20% of N)
  and a few bird photographs over 6 MB (valid JPEGs padded with APP15 segments), which a pipeline must skip by size;
- `annotations/test-annotations-bbox.csv` — the V4 header, one row per box, rows grouped by image, images in a
  deterministic order that is not sorted by ID;
- `annotations/bbox_labels_600_hierarchy.json` — a faithful subset of the real hierarchy (real LabelNames, real
  nesting: Bird under Animal, its 17 subclasses one level down, Parts where the real file has them);
- `annotations/class-descriptions-boxable.csv` — `LabelName,DisplayName` without a header, for every class used.

Each JPEG also carries its own reference boxes in a COM segment (`{"openimages-reference": {...}}`), so the simulated
workforce finds the truth wherever the image is copied; `read_reference` reads it by walking the JPEG markers,
without decoding pixels. Everything is a pure function of (index, seed): the same seed gives the same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import PIL
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from emulator.sim.scenes import Scene, paint_scene

log = logging.getLogger("emulator.sim.openimages")

DEFAULT_BUCKET = "open-images-dataset"
BIRD = "/m/015p6"
SIZE_LIMIT = 6 * 1024 * 1024  # the seed notebook skips images whose ContentLength / 1024**2 > 6
REFERENCE_KEY = "openimages-reference"
CSV_HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
)
ANNOTATIONS_KEY = "annotations/test-annotations-bbox.csv"
HIERARCHY_KEY = "annotations/bbox_labels_600_hierarchy.json"
CLASSES_KEY = "annotations/class-descriptions-boxable.csv"

# -- taxonomy: real Open Images LabelNames (class-descriptions-boxable.csv, bbox_labels_600_hierarchy.json) --------
BIRD_SUBCLASSES: dict[str, str] = {  # display name -> LabelName, in the real hierarchy's order
    "Magpie": "/m/012074",
    "Woodpecker": "/m/01dy8n",
    "Blue jay": "/m/01f8m5",
    "Ostrich": "/m/05n4y",
    "Penguin": "/m/05z6w",
    "Raven": "/m/06j2d",
    "Chicken": "/m/09b5t",
    "Eagle": "/m/09csl",
    "Owl": "/m/09d5_",
    "Duck": "/m/09ddx",
    "Canary": "/m/0ccs93",
    "Goose": "/m/0dbvp",
    "Swan": "/m/0dftk",
    "Falcon": "/m/0f6wt",
    "Parrot": "/m/0gv1x",
    "Sparrow": "/m/0h23m",
    "Turkey": "/m/0jly1",
}
OTHER_CLASSES: dict[str, str] = {  # the distractors the scenes draw, and the classes above them
    "Butterfly": "/m/0cyf8",
    "Kite": "/m/02zt3",
    "Ball": "/m/018xm",
    "Airplane": "/m/0cmf2",
    "Fish": "/m/0ch_cf",
    "Flower": "/m/0c9ph5",
    "Tree": "/m/07j7r",
    "Car": "/m/0k4j",
    "Boat": "/m/019jd",
    "Person": "/m/01g317",
    "Cat": "/m/01yrx",
    "Dog": "/m/0bt9lr",
}
DISPLAY_NAMES: dict[str, str] = {
    BIRD: "Bird",
    **{label: name for name, label in BIRD_SUBCLASSES.items()},
    **{label: name for name, label in OTHER_CLASSES.items()},
    "/m/0jbk": "Animal",
    "/m/04rky": "Mammal",
    "/m/01lrl": "Carnivore",
    "/m/03xxp": "Invertebrate",
    "/m/03vt0": "Insect",
    "/m/0d_2m": "Moths and butterflies",
    "/m/0cydv": "Caterpillar",
    "/m/03fj2": "Goldfish",
    "/m/0by6g": "Shark",
    "/m/0138tl": "Toy",
    "/m/01j51": "Balloon",
    "/m/05y5lj": "Sports equipment",
    "/m/01226z": "Football",
    "/m/05ctyq": "Tennis ball",
    "/m/07yv9": "Vehicle",
    "/m/01prls": "Land vehicle",
    "/m/08dz3q": "Auto part",
    "/m/083wq": "Wheel",
    "/m/0h9mv": "Tire",
    "/m/0h2r6": "Van",
    "/m/01rzcn": "Watercraft",
    "/m/0ph39": "Canoe",
    "/m/0k5j": "Aircraft",
    "/m/09ct_": "Helicopter",
    "/m/05s2s": "Plant",
    "/m/0cdl1": "Palm tree",
    "/m/0cffdh": "Maple",
    "/m/06m11": "Rose",
    "/m/0ftb8": "Sunflower",
    "/m/02p0tk3": "Human body",
    "/m/0dzct": "Human face",
    "/m/04hgtk": "Human head",
    "/m/0k65p": "Human hand",
    "/m/04yx4": "Man",
    "/m/03bt1vf": "Woman",
}


def _node(label: str, subcategory: list[dict] | None = None, part: list[dict] | None = None) -> dict:
    node: dict = {"LabelName": label}
    if part:
        node["Part"] = part
    if subcategory:
        node["Subcategory"] = subcategory
    return node


def hierarchy() -> dict:
    """The subset of `bbox_labels_600_hierarchy.json` the mirror uses, nested exactly as the real file nests it."""
    leaf = _node
    return _node(
        "/m/0bl9f",  # Entity
        [
            _node("/m/0138tl", [leaf("/m/01j51"), leaf("/m/02zt3")]),  # Toy: Balloon, Kite
            _node(
                "/m/01g317",  # Person
                [leaf("/m/04yx4"), leaf("/m/03bt1vf")],
                part=[_node("/m/02p0tk3", part=[leaf("/m/04hgtk"), leaf("/m/0dzct"), leaf("/m/0k65p")])],
            ),
            _node(
                "/m/05s2s",  # Plant
                [
                    _node("/m/07j7r", [leaf("/m/0cdl1"), leaf("/m/0cffdh")]),  # Tree
                    _node("/m/0c9ph5", [leaf("/m/06m11"), leaf("/m/0ftb8")]),  # Flower
                ],
            ),
            _node(
                "/m/07yv9",  # Vehicle
                [
                    _node(
                        "/m/01prls",  # Land vehicle
                        [_node("/m/0k4j", [leaf("/m/0h2r6")])],  # Car: Van
                        part=[_node("/m/08dz3q", [leaf("/m/083wq"), leaf("/m/0h9mv")])],  # Auto part
                    ),
                    _node("/m/01rzcn", [_node("/m/019jd", [leaf("/m/0ph39")])]),  # Watercraft: Boat: Canoe
                    _node("/m/0k5j", [leaf("/m/09ct_"), leaf("/m/0cmf2")]),  # Aircraft: Helicopter, Airplane
                ],
            ),
            _node(
                "/m/0jbk",  # Animal
                [
                    _node(BIRD, [leaf(label) for label in BIRD_SUBCLASSES.values()]),
                    _node(
                        "/m/03xxp",  # Invertebrate
                        [_node("/m/03vt0", [_node("/m/0d_2m", [leaf("/m/0cydv"), leaf("/m/0cyf8")])])],
                    ),
                    _node("/m/04rky", [_node("/m/01lrl", [leaf("/m/01yrx"), leaf("/m/0bt9lr")])]),  # Mammal
                    _node("/m/0ch_cf", [leaf("/m/03fj2"), leaf("/m/0by6g")]),  # Fish
                ],
            ),
            _node("/m/05y5lj", [_node("/m/018xm", [leaf("/m/01226z"), leaf("/m/05ctyq")])]),  # Sports eq.: Ball
        ],
    )


def class_descriptions_csv() -> str:
    """`class-descriptions-boxable.csv`: every LabelName in the subset hierarchy (not the root), no header."""
    return "".join(f"{label},{name}\n" for label, name in DISPLAY_NAMES.items())


# -- the reference a JPEG carries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RefBox:
    """One Open Images box: LabelName, bird or not, fractions of the image, and the V4 flags."""

    label_name: str
    is_bird: bool
    xmin: float
    xmax: float
    ymin: float
    ymax: float
    occluded: bool = False
    truncated: bool = False
    group: bool = False

    def pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        """This box as a Ground Truth pixel box (left, top, width, height)."""
        left, top = round(self.xmin * width), round(self.ymin * height)
        return (left, top, round(self.xmax * width) - left, round(self.ymax * height) - top)


@dataclass(frozen=True)
class ImageReference:
    """What an exhaustive annotator would have drawn on one image; carried inside the image's own JPEG."""

    image_id: str
    width: int
    height: int
    boxes: list[RefBox] = field(default_factory=list)

    def bird_boxes_px(self) -> list[tuple[int, int, int, int]]:
        """The bird boxes (any Bird subclass, groups included) as pixel boxes: the truth a labeling job aims at."""
        return [b.pixels(self.width, self.height) for b in self.boxes if b.is_bird]

    def to_json(self) -> bytes:
        body = {**asdict(self), "boxes": [asdict(b) for b in self.boxes]}
        return json.dumps({REFERENCE_KEY: body}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: dict) -> ImageReference:
        return cls(
            image_id=str(data["image_id"]),
            width=int(data["width"]),
            height=int(data["height"]),
            boxes=[RefBox(**b) for b in data["boxes"]],
        )


_COM = 0xFE
_SOS, _EOI = 0xDA, 0xD9
_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RST0-7 carry no length
_REFERENCE_PREFIX = b'{"' + REFERENCE_KEY.encode() + b'"'


def read_reference(jpeg: bytes) -> ImageReference | None:
    """The reference boxes from a mirror JPEG's COM segment, or None for any other image (or not a JPEG).

    Walks the marker segments from SOI up to the first scan (SOS) using their length fields only, so a 7 MB image
    padded with APPn segments costs a few hundred jumps and no pixel decoding.
    """
    data = memoryview(jpeg)
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI):
            return None
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            return None
        if marker == _COM:
            payload = bytes(data[pos + 4 : pos + 2 + length])
            if payload.startswith(_REFERENCE_PREFIX):
                try:
                    return ImageReference.from_json(json.loads(payload)[REFERENCE_KEY])
                except (ValueError, KeyError, TypeError):
                    return None
        pos += 2 + length
    return None


def _segment(marker: int, payload: bytes) -> bytes:
    if len(payload) > 65533:
        raise ValueError(f"a JPEG segment holds at most 65533 bytes, not {len(payload)}")
    return bytes((0xFF, marker)) + (len(payload) + 2).to_bytes(2, "big") + payload


def embed_segments(jpeg: bytes, segments: list[bytes]) -> bytes:
    """Insert marker segments right after SOI and the JFIF APP0 segment (where metadata belongs)."""
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:]


def padding_segments(size: int) -> list[bytes]:
    """APP15 segments adding about `size` bytes: an oversized but valid JPEG (decoders skip unknown APPn)."""
    chunk = 65533
    out = []
    filler = (b"openimages-mirror padding " * 2600)[:chunk]
    while size > 0:
        n = min(chunk, max(size - 4, 1))
        out.append(_segment(0xEF, filler[:n]))
        size -= n + 4
    return out


# -- generating images --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MirrorImage:
    """One file of the mirror: its ID, JPEG bytes (reference inside), and the reference itself."""

    image_id: str
    jpeg: bytes
    reference: ImageReference
    kind: str  # "bird" | "other" | "oversized"

    @property
    def key(self) -> str:
        return f"test/{self.image_id}.jpg"


def image_id(seed: int, index: int) -> str:
    """A 16-hex ImageID, stable for (seed, index), looking like the real ones (and not ordered like them)."""
    return hashlib.blake2b(f"openimages-mirror/{seed}/{index}".encode(), digest_size=8).hexdigest()


def mirror_plan(images: int, seed: int) -> list[str]:
    """The kind of every file in the mirror, in annotation-file order: N birds, ~20% others, 3-5 oversized birds."""
    others = max(3, round(0.2 * images))
    oversized = 3 if images < 200 else (4 if images < 1000 else 5)
    kinds = ["bird"] * images + ["other"] * others + ["oversized"] * oversized
    order = np.random.default_rng([seed, 0x0B1]).permutation(len(kinds))
    return [kinds[i] for i in order]


def render(index: int, kind: str, seed: int) -> MirrorImage:
    """Paint, label and encode file `index` of the mirror (a pure function of its arguments)."""
    rng = np.random.default_rng([seed, index])
    scene = paint_scene(rng, with_birds=kind != "other")
    ident = image_id(seed, index)
    reference = _reference(ident, scene, rng)
    buf = io.BytesIO()
    Image.fromarray(scene.pixels).save(buf, format="JPEG", quality=int(rng.integers(72, 93)))
    segments = [_segment(_COM, reference.to_json())]
    if kind == "oversized":
        target = int(SIZE_LIMIT * rng.uniform(1.03, 1.2))
        segments += padding_segments(target - buf.tell() - len(segments[0]))
    return MirrorImage(ident, embed_segments(buf.getvalue(), segments), reference, kind)


def _reference(ident: str, scene: Scene, rng: np.random.Generator) -> ImageReference:
    """Scene objects as Open Images boxes; a third of the birds are labelled plain Bird, the rest by subclass."""
    h, w, _ = scene.pixels.shape
    boxes = []
    for obj in scene.objects:
        if obj.is_bird:
            species = obj.name.split(":", 1)[1]
            label = BIRD if obj.group or rng.random() < 0.33 else BIRD_SUBCLASSES[species]
        else:
            label = OTHER_CLASSES[obj.name]
        x0, y0, x1, y1 = obj.box
        boxes.append(
            RefBox(
                label,
                bool(obj.is_bird),
                round(x0 / w, 6),
                round(x1 / w, 6),
                round(y0 / h, 6),
                round(y1 / h, 6),
                bool(obj.occluded),
                bool(obj.truncated),
                bool(obj.group),
            )
        )
    return ImageReference(ident, w, h, boxes)


def generate_images(
    images: int, seed: int, processes: int | None = None, cache_dir: Path | None = None
) -> Iterator[MirrorImage]:
    """Every file of the mirror in annotation-file order (birds, others and oversized interleaved).

    Painting is CPU-bound Python, so large mirrors are painted by `processes` child interpreters (default: one per
    core, up to 4; in-process below a few hundred files, where start-up would cost more than it saves). Each child
    paints every P-th file and streams raw frames (index, JPEG bytes) over its stdout: no pickling, and the order
    and the bytes do not depend on the process count.

    With `cache_dir`, the painted files are kept there in one file of frames per (images, seed, painting code, numpy
    and Pillow versions) — written under a temporary name and renamed once complete — and read back instead of
    painted the next time (the same bytes: `make demo` seeds 2,500 birds in seconds after its first run).
    """
    plan = mirror_plan(images, seed)
    if cache_dir is None:
        yield from _painted(plan, images, seed, processes)
        return
    path = frames_cache_path(Path(cache_dir), images, seed)
    if path.exists():
        with path.open("rb") as frames:
            for index, kind in enumerate(plan):
                yield _mirror_image(index, kind, *_read_frame(frames, path))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    complete = False
    try:
        with partial.open("wb") as out:
            for index, image in enumerate(_painted(plan, images, seed, processes)):
                out.write(_frame(index, image.jpeg))
                yield image
        complete = True
    finally:  # a consumer that stopped early leaves no half-written cache behind
        if complete:
            partial.replace(path)
        else:
            partial.unlink(missing_ok=True)


def frames_cache_path(cache_dir: Path, images: int, seed: int) -> Path:
    """The cache file of a mirror's painted files: named by everything its bytes depend on."""
    from emulator.sim import scenes

    digest = hashlib.sha256(f"{images} {seed} {np.__version__} {PIL.__version__}".encode())
    for module in (__file__, scenes.__file__):
        digest.update(Path(module).read_bytes())
    return cache_dir / f"openimages-{images}-{seed}-{digest.hexdigest()[:16]}.frames"


def _painted(plan: list[str], images: int, seed: int, processes: int | None) -> Iterator[MirrorImage]:
    if processes is None:
        processes = 1 if len(plan) < 300 else max(1, min(4, os.cpu_count() or 1))
    if processes <= 1:
        for index, kind in enumerate(plan):
            yield render(index, kind, seed)
        return
    children = [_spawn_painter(images, seed, k, processes) for k in range(processes)]
    try:
        for index, kind in enumerate(plan):
            child = children[index % processes]
            yield _mirror_image(index, kind, *_read_frame(child.stdout, child))
    finally:  # also when the consumer stops early: the painters have nothing left to do
        for child in children:
            child.stdout.close()
            if child.poll() is None:
                child.kill()
            child.wait()


def _mirror_image(index: int, kind: str, got: int, jpeg: bytes) -> MirrorImage:
    if got != index:
        raise RuntimeError(f"mirror painter sent file {got}, expected {index}")
    reference = read_reference(jpeg)
    if reference is None:  # pragma: no cover - a painter bug
        raise RuntimeError(f"mirror painter sent file {index} without its reference")
    return MirrorImage(reference.image_id, jpeg, reference, kind)


def _spawn_painter(images: int, seed: int, worker: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "OPENBLAS_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "emulator.sim.openimages", str(images), str(seed), str(worker), str(workers)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, env=env)


def _frame(index: int, jpeg: bytes) -> bytes:
    return index.to_bytes(4, "big") + len(jpeg).to_bytes(4, "big") + jpeg


def _read_frame(stream, source: subprocess.Popen | Path) -> tuple[int, bytes]:
    """The next (index, JPEG bytes) frame from a painter child's stdout or a cache file (`source`)."""
    head = stream.read(8)
    size = int.from_bytes(head[4:], "big") if len(head) == 8 else 0
    body = stream.read(size) if size else b""
    if len(head) < 8 or len(body) < size:
        if isinstance(source, Path):
            raise RuntimeError(f"mirror cache {source} is truncated; delete it to paint the mirror again")
        source.wait(timeout=30)
        raise RuntimeError(f"mirror painter exited early (exit status {source.returncode})")
    return int.from_bytes(head[:4], "big"), body


def _paint_share(images: int, seed: int, worker: int, workers: int) -> None:
    """A painter child: render every `workers`-th file starting at `worker`, as frames on stdout."""
    out = sys.stdout.buffer
    with contextlib.suppress(BrokenPipeError):  # the reader went away: nothing more is wanted
        for index, kind in enumerate(mirror_plan(images, seed)):
            if index % workers == worker:
                out.write(_frame(index, render(index, kind, seed).jpeg))
        out.flush()


def annotation_rows(image: MirrorImage, rng: np.random.Generator) -> list[str]:
    """The image's rows of `test-annotations-bbox.csv` (Source is mostly xclick, as in the real test split)."""
    rows = []
    for b in image.reference.boxes:
        source = "xclick" if rng.random() < 0.92 else "activemil"
        rows.append(
            f"{image.image_id},{source},{b.label_name},1,{b.xmin:.6f},{b.xmax:.6f},{b.ymin:.6f},{b.ymax:.6f},"
            f"{int(b.occluded)},{int(b.truncated)},{int(b.group)},0,0"
        )
    return rows


# -- seeding a bucket ---------------------------------------------------------------------------------------------
def s3_client(endpoint_url: str, pool: int = 16):
    """A client for the emulator (dummy credentials: it accepts any)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - the emulator accepts any credentials
        region_name="us-east-1",
        config=Config(max_pool_connections=pool, retries={"max_attempts": 8, "mode": "adaptive"}),
    )


def _existing_etags(s3, bucket: str) -> dict[str, str]:
    etags: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            etags[obj["Key"]] = obj["ETag"].strip('"')
    return etags


def seed_openimages(
    endpoint_url: str,
    images: int,
    seed: int,
    bucket: str = DEFAULT_BUCKET,
    upload_threads: int = 8,
    cache_dir: Path | None = None,
) -> dict:
    """Create (or refresh) the mirror in `bucket` on `endpoint_url`; returns a summary of what is there.

    Idempotent: objects whose ETag already matches the bytes to write are left alone, so a re-run with the same
    arguments uploads nothing and ends with the same bucket. Uploads run on a bounded thread pool while painting
    continues. `cache_dir`: see `generate_images`.
    """
    if images < 1:
        raise ValueError("images must be at least 1")
    started = time.monotonic()
    s3 = s3_client(endpoint_url, pool=upload_threads * 2)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
    existing = _existing_etags(s3, bucket)
    rows_rng = np.random.default_rng([seed, 0xC5F])
    rows = [CSV_HEADER]
    counts = {"bird": 0, "other": 0, "oversized": 0}
    boxes = bird_boxes = total_bytes = uploaded = 0
    in_flight: set[Future] = set()

    def put(key: str, body: bytes, content_type: str) -> int:
        if existing.get(key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            return 0
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        return 1

    with ThreadPoolExecutor(upload_threads, thread_name_prefix="openimages-upload") as pool:
        for image in generate_images(images, seed, cache_dir=cache_dir):
            counts[image.kind] += 1
            boxes += len(image.reference.boxes)
            bird_boxes += len(image.reference.bird_boxes_px())
            total_bytes += len(image.jpeg)
            rows.extend(annotation_rows(image, rows_rng))
            in_flight.add(pool.submit(put, image.key, image.jpeg, "image/jpeg"))
            if len(in_flight) >= 4 * upload_threads:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                uploaded += sum(fut.result() for fut in done)
        uploaded += sum(fut.result() for fut in in_flight)
    annotations = {
        ANNOTATIONS_KEY: ("\n".join(rows) + "\n").encode(),
        HIERARCHY_KEY: json.dumps(hierarchy(), indent=4).encode(),
        CLASSES_KEY: class_descriptions_csv().encode(),
    }
    for key, body in annotations.items():
        uploaded += put(key, body, "text/csv" if key.endswith(".csv") else "application/json")
        total_bytes += len(body)
    summary = {
        "bucket": bucket,
        "bird_images": counts["bird"],
        "other_images": counts["other"],
        "oversized_images": counts["oversized"],
        "boxes": boxes,
        "bird_boxes": bird_boxes,
        "bytes": total_bytes,
        "uploaded": uploaded,
        "seconds": round(time.monotonic() - started, 2),
    }
    log.info("seeded the Open Images mirror: %s", summary)
    return summary


def read_annotations_csv(body: bytes) -> list[dict[str, str]]:
    """Rows of an annotation file as dicts (a helper for tests and tools)."""
    return list(csv.DictReader(io.StringIO(body.decode())))


if __name__ == "__main__":  # the painter child of generate_images: IMAGES SEED WORKER WORKERS
    _paint_share(*(int(arg) for arg in sys.argv[1:5]))
