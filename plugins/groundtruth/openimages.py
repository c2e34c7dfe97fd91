"""Open Images: the class hierarchy walk, streaming selection from the annotation CSV, and parallel copy.

The S3 shells pace themselves (`S3Pacer`): fewer requests in flight while S3 answers SlowDown, and a retry of
transient errors that outlasts the client's own retry quota, so a storm slows the data stages down instead of failing
them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, TypeVar

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
    on_window: Callable[[str, list[Candidate], dict[str, int]], None] | None = None,
    lookahead: int = 3,
) -> tuple[list[Candidate], dict[str, int]]:
    """The first `limit` candidates whose image exists and is at most `max_bytes`, in candidate order.

    Sizes are asked for a window of candidates at a time (`sizes_of` heads them in parallel) instead of one
    request per box line as the notebook did; the same images come out, in the same order. Up to `lookahead`
    windows are asked at once, but only while they are needed for sure (the windows before them cannot complete the
    selection even if every image qualifies): the pool never drains between windows, a slow answer holds up only its
    own window, and at most one window is asked beyond the last image.
    `seen`: images already judged earlier in the same order (see `skip_through`); a later appearance of one counts
    as a duplicate.
    `on_window(last judged image, selected so far, skipped so far)` after each window: a record from which
    `skip_through` + `seen` resume exactly.
    Returns (selected, counts of what was skipped and why).
    """
    selected: list[Candidate] = []
    skipped = {"too_large": 0, "missing": 0, "duplicate": 0}
    seen = set(seen or ())
    source = iter(candidates)

    def next_window() -> tuple[list[Candidate], int]:
        """Up to `window` new candidates, and how many duplicates were passed on the way."""
        batch: list[Candidate] = []
        duplicates = 0
        while len(batch) < window:
            candidate = next(source, None)
            if candidate is None:
                break
            if candidate.image_id in seen:
                duplicates += 1  # the file was not grouped by image: keep the first appearance
                continue
            seen.add(candidate.image_id)
            batch.append(candidate)
        return batch, duplicates

    pending: deque[tuple[list[Candidate], int, Future]] = deque()
    exhausted = False

    def ask_ahead() -> None:
        """Ask the next windows while they are needed for sure: even if every pending one qualified, short."""
        nonlocal exhausted
        while not exhausted and len(pending) < lookahead:
            if len(selected) + sum(len(b) for b, _, _ in pending) >= limit:
                return
            batch, duplicates = next_window()
            if not batch:
                exhausted = True
                skipped["duplicate"] += duplicates  # the stream ended after a few more duplicates
                return
            pending.append((batch, duplicates, ahead.submit(sizes_of, [c.image_id for c in batch])))

    with ThreadPoolExecutor(max_workers=lookahead) as ahead:
        ask_ahead()
        while pending and len(selected) < limit:
            batch, duplicates, sizes = pending.popleft()
            answered = sizes.result()
            for candidate in batch:
                size = answered.get(candidate.image_id)
                if size is None:
                    skipped["missing"] += 1
                elif size > max_bytes:
                    skipped["too_large"] += 1
                elif len(selected) < limit:
                    selected.append(candidate)
            skipped["duplicate"] += duplicates  # counted with its window, so a record resumes exactly
            if on_window is not None:
                on_window(batch[-1].image_id, selected, skipped)
            ask_ahead()
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


# -- pacing under throttling ----------------------------------------------------------------------------------------
class AdaptiveConcurrency:
    """How many requests may be in flight: halved when one is throttled, one more after `limit` answers in a row
    without throttling (additive increase, multiplicative decrease, as TCP does), within [minimum, maximum].

    A throttle cuts the limit once per round: answers to requests sent before the last cut do not cut it again, so
    one burst of SlowDowns halves the limit once instead of collapsing it.
    """

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"concurrency limits need 1 <= minimum <= maximum, got {minimum} and {maximum}")
        self.minimum, self.maximum = minimum, maximum
        self.limit = maximum
        self.in_flight = 0
        self.cuts = 0
        self._round = 0
        self._clean = 0
        self._changed = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot; returns the round the request goes out in, for `release`."""
        with self._changed:
            while self.in_flight >= self.limit:
                self._changed.wait()
            self.in_flight += 1
            return self._round

    def release(self, sent_in: int, throttled: bool) -> None:
        with self._changed:
            self.in_flight -= 1
            if throttled:
                self._clean = 0
                if sent_in == self._round:  # the first throttle of this round: later ones were already in flight
                    self._round += 1
                    if self.limit > self.minimum:
                        self.limit = max(self.minimum, self.limit // 2)
                        self.cuts += 1
            else:
                self._clean += 1
                if self._clean >= self.limit and self.limit < self.maximum:
                    self.limit += 1
                    self._clean = 0
            self._changed.notify(max(0, self.limit - self.in_flight))  # wake only as many as may go


T = TypeVar("T")


class S3Pacer:
    """Every S3 call of a data stage goes through `call`: it waits for a slot of the shared adaptive limit (cut by
    throttling only: a 500 says nothing about the rate), and a transient error (SlowDown, 5xx, a dropped connection)
    is asked again with backoff, `attempts` times in all.

    The client retries first (adaptive mode), but botocore's retry quota runs dry in a sustained storm and it then
    raises at once; this retry has no quota. A success the client had to retry counts as throttled too. The delay
    stays short (at most `max_delay`, about a minute of patience in all): the limit is what lowers the rate, and a
    long sleep of one unlucky request would hold up its whole window of HEADs.
    """

    def __init__(
        self,
        workers: int,
        *,
        attempts: int = 60,
        base_delay: float = 0.1,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"an S3 call needs at least 1 attempt, got {attempts}")
        # A floor of a quarter: below it, waiting out the client's own backoff in the few slots left idles the stage.
        self.limit = AdaptiveConcurrency(max(1, workers), minimum=max(1, workers // 4))
        self.attempts = attempts
        self.base_delay, self.max_delay = base_delay, max_delay
        self.sleep = sleep
        self.retried = 0

    def call(self, what: str, request: Callable[[], T]) -> T:
        """`request()`, paced; its last error, noted with `what` (the object at fault) and the tries, if it never
        succeeds. Errors that are not transient (AccessDenied, a missing key) are raised at once."""
        from groundtruth.aws_errors import backoff_delay, client_retries, is_throttling_error, is_transient_error

        started = time.monotonic()
        for attempt in range(self.attempts):
            sent_in = self.limit.acquire()
            try:
                result = request()
            except Exception as exc:
                self.limit.release(sent_in, throttled=is_throttling_error(exc))
                if not is_transient_error(exc):
                    raise
                if attempt + 1 == self.attempts:
                    exc.add_note(
                        f"{what}: still failing after {self.attempts} tries over {time.monotonic() - started:.0f} s"
                    )
                    raise
                self.retried += 1
                self.sleep(backoff_delay(attempt, base=self.base_delay, cap=self.max_delay))
                continue
            self.limit.release(sent_in, throttled=isinstance(result, dict) and client_retries(result) > 0)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")


# -- S3 shells ----------------------------------------------------------------------------------------------------
def head_sizes(
    s3, bucket: str, keys: list[str], workers: int = 32, pacer: S3Pacer | None = None
) -> dict[str, int | None]:
    """ContentLength of each key (None when it does not exist), one HEAD per key, in parallel, paced by `pacer`
    (one per stage, so what it learned about throttling carries over from one call to the next)."""
    from botocore.exceptions import ClientError

    from groundtruth.aws_errors import is_missing_s3_object

    pacer = pacer or S3Pacer(workers)

    def head(key: str) -> int | None:
        try:
            response = pacer.call(f"HEAD s3://{bucket}/{key}", lambda: s3.head_object(Bucket=bucket, Key=key))
        except ClientError as exc:
            if is_missing_s3_object(exc):
                return None
            raise
        return int(response["ContentLength"])

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys) or 1))) as pool:
        return dict(zip(keys, pool.map(head, keys), strict=True))


@dataclass
class CopyResult:
    copied: int = 0
    skipped_existing: int = 0


def existing_keys(s3, bucket: str, prefix: str, pacer: S3Pacer | None = None) -> dict[str, int]:
    """Every key under `prefix` with its size (one paginated listing instead of a HEAD per object)."""

    def listing() -> dict[str, int]:
        found: dict[str, int] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = int(obj["Size"])
        return found

    # A page that fails after the client's retries starts the listing over: it is a few requests, not thousands.
    return (pacer or S3Pacer(1)).call(f"listing s3://{bucket}/{prefix}", listing)


def copy_objects(
    s3,
    pairs: list[tuple[str, str, str, str]],
    workers: int = 16,
    log: Callable[[str], None] = print,
    existing: dict[str, int] | None = None,
    pacer: S3Pacer | None = None,
) -> CopyResult:
    """Server-side copy of (src_bucket, src_key, dst_bucket, dst_key) pairs in a bounded pool, paced by `pacer`.

    Pairs whose destination already exists (in `existing`, key → size) are skipped, so a retried or cleared task
    copies only what is missing.
    """
    existing = existing or {}
    todo = [p for p in pairs if p[3] not in existing]
    result = CopyResult(skipped_existing=len(pairs) - len(todo))
    if not todo:
        log(f"copy: all {len(pairs)} objects already present, nothing to copy")
        return result
    pacer = pacer or S3Pacer(workers)

    def copy(pair: tuple[str, str, str, str]) -> int:
        src_bucket, src_key, dst_bucket, dst_key = pair
        pacer.call(
            f"copy s3://{src_bucket}/{src_key} to s3://{dst_bucket}/{dst_key}",
            lambda: s3.copy_object(Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key}),
        )
        return 1

    step = max(1, len(todo) // 10)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        for done, _ in enumerate(pool.map(copy, todo), start=1):
            result.copied += 1
            if done % step == 0 or done == len(todo):
                log(
                    f"copy: {done}/{len(todo)} copied ({result.skipped_existing} already present; "
                    f"{pacer.retried} retried, {pacer.limit.limit} in flight)"
                )
    return result
