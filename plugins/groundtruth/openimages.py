"""Open Images: the class hierarchy walk, streaming selection from the annotation CSV, and parallel copy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

import pandas as pd


def class_subtree(hierarchy: dict, label_name: str) -> set[str]:
    """The class `label_name` and every LabelName below it in `bbox_labels_600_hierarchy.json`.

    Descends `Subcategory` only: `Part` entries (a bird's beak) are parts of an object, not kinds of it.
    Raises KeyError naming the class when the hierarchy does not hold it.
    """
    found: set[str] = set()
    stack: list[tuple[dict, bool]] = [(hierarchy, False)]
    present = False
    while stack:
        node, inside = stack.pop()
        if node.get("LabelName") == label_name:
            inside = present = True
        if inside:
            found.add(node["LabelName"])
        stack.extend((child, inside) for child in node.get("Subcategory", []))
    if not present:
        raise KeyError(f"class {label_name} is not in the Open Images hierarchy")
    return found


# -- selection ----------------------------------------------------------------------------------------------------
ANNOTATION_COLUMNS = ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"]


@dataclass
class Candidate:
    """An image holding at least one box of the wanted classes, with those boxes (Open Images fractions)."""

    image_id: str
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # xmin, xmax, ymin, ymax


def iter_candidates(
    csv_stream: IO[bytes], classes: set[str], skip: set[str] = frozenset(), chunk_rows: int = 250_000
) -> Iterator[Candidate]:
    """Images with a box of `classes`, in first-appearance order, streaming the annotation CSV in chunks.

    Memory stays bounded by one chunk plus the boxes of the images not yet yielded: an image is yielded once a
    later image has appeared (the file keeps an image's rows together), so a consumer may stop at any time.
    """
    reader = pd.read_csv(
        csv_stream,
        usecols=ANNOTATION_COLUMNS,
        dtype={"ImageID": str, "LabelName": str, "XMin": float, "XMax": float, "YMin": float, "YMax": float},
        chunksize=chunk_rows,
        engine="c",
    )
    wanted = pd.Index(sorted(classes))
    current: Candidate | None = None
    for chunk in reader:
        missing = set(ANNOTATION_COLUMNS) - set(chunk.columns)
        if missing:
            raise ValueError(f"annotation CSV lacks column(s) {sorted(missing)}")
        hits = chunk[chunk["LabelName"].isin(wanted) & ~chunk["ImageID"].isin(skip)]
        for image_id, xmin, xmax, ymin, ymax in hits[["ImageID", "XMin", "XMax", "YMin", "YMax"]].itertuples(
            index=False, name=None
        ):
            if current is None or current.image_id != image_id:
                if current is not None:
                    yield current
                current = Candidate(image_id)
            current.boxes.append((xmin, xmax, ymin, ymax))
    if current is not None:
        yield current


def select_images(
    candidates: Iterable[Candidate],
    sizes_of: Callable[[list[str]], dict[str, int | None]],
    limit: int,
    max_bytes: int,
    window: int = 256,
    seen: set[str] | None = None,
) -> tuple[list[Candidate], dict[str, int]]:
    """The first `limit` candidates whose image exists and is at most `max_bytes`, in candidate order.

    Sizes are asked for a window of candidates at a time (`sizes_of` heads them in parallel) instead of one
    request per box line as the notebook did; the same images come out, in the same order. `seen`: images already
    judged earlier in the same order (see `skip_through`); a later appearance of one counts as a duplicate.
    Returns (selected, counts of what was skipped and why).
    """
    selected: list[Candidate] = []
    skipped = {"too_large": 0, "missing": 0, "duplicate": 0}
    seen = set(seen or ())
    batch: list[Candidate] = []
    source = iter(candidates)
    exhausted = False
    while len(selected) < limit and not exhausted:
        while len(batch) < window:
            candidate = next(source, None)
            if candidate is None:
                exhausted = True
                break
            if candidate.image_id in seen:
                skipped["duplicate"] += 1  # the file was not grouped by image: keep the first appearance
                continue
            seen.add(candidate.image_id)
            batch.append(candidate)
        sizes = sizes_of([c.image_id for c in batch])
        for candidate in batch:
            size = sizes.get(candidate.image_id)
            if size is None:
                skipped["missing"] += 1
            elif size > max_bytes:
                skipped["too_large"] += 1
            elif len(selected) < limit:
                selected.append(candidate)
        batch = []
    return selected, skipped


def skip_through(candidates: Iterable[Candidate], image_id: str) -> tuple[Iterator[Candidate], set[str]] | None:
    """Consume `candidates` up to and including the first appearance of `image_id`, without asking any size.

    Returns (the rest of the stream, the images passed over), which `select_images(rest, ..., seen=passed)` continues
    from exactly as a selection from the start would have; None when `image_id` never appears (the stream is then
    spent). A chain's next slice starts after the previous slice's last image this way, instead of heading every
    earlier image again.
    """
    source = iter(candidates)
    passed: set[str] = set()
    for candidate in source:
        passed.add(candidate.image_id)
        if candidate.image_id == image_id:
            return source, passed
    return None


# -- S3 shells ----------------------------------------------------------------------------------------------------
def head_sizes(s3, bucket: str, keys: list[str], workers: int = 32) -> dict[str, int | None]:
    """ContentLength of each key (None when it does not exist), one HEAD per key, in parallel."""
    from botocore.exceptions import ClientError

    from groundtruth.aws_errors import is_missing_s3_object

    def head(key: str) -> int | None:
        try:
            return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if is_missing_s3_object(exc):
                return None
            raise

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys) or 1))) as pool:
        return dict(zip(keys, pool.map(head, keys), strict=True))


@dataclass
class CopyResult:
    copied: int = 0
    skipped_existing: int = 0


def existing_keys(s3, bucket: str, prefix: str) -> dict[str, int]:
    """Every key under `prefix` with its size (one paginated listing instead of a HEAD per object)."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"]] = int(obj["Size"])
    return found


def copy_objects(
    s3,
    pairs: list[tuple[str, str, str, str]],
    workers: int = 16,
    log: Callable[[str], None] = print,
    existing: dict[str, int] | None = None,
) -> CopyResult:
    """Server-side copy of (src_bucket, src_key, dst_bucket, dst_key) pairs in a bounded pool.

    Pairs whose destination already exists (in `existing`, key → size) are skipped, so a retried or cleared task
    copies only what is missing. Transient errors are retried by the client's own retry policy.
    """
    existing = existing or {}
    todo = [p for p in pairs if p[3] not in existing]
    result = CopyResult(skipped_existing=len(pairs) - len(todo))
    if not todo:
        log(f"copy: all {len(pairs)} objects already present, nothing to copy")
        return result

    def copy(pair: tuple[str, str, str, str]) -> int:
        src_bucket, src_key, dst_bucket, dst_key = pair
        s3.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key})
        return 1

    step = max(1, len(todo) // 10)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        for done, _ in enumerate(pool.map(copy, todo), start=1):
            result.copied += 1
            if done % step == 0 or done == len(todo):
                log(f"copy: {done}/{len(todo)} copied ({result.skipped_existing} already present)")
    return result
