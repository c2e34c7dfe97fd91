"""The active-learning loop's steps (the seed's Step Functions, GROUND_TRUTH.md) as small pure functions over manifest
records, plus two thin S3 shells. No Airflow imports; the DAG family's tasks call these and do the I/O.

A *record* is one manifest line as a dict: `{"source": "<text>", "id": N}` plus, once labeled, `"<attr>": <class
index>` and `"<attr>-metadata": {"class-name", "confidence", "human-annotated": "yes" | "no", "job-name", "type",
"creation-date"}` (Ground Truth's text-classification output). Records stay in input-file order; `id` is the 0-based
line position among the non-blank lines of the input manifest.

Steps, in loop order:
- `parse_input_manifest(raw, uri, attr=None) -> list[dict]` — JSON Lines → records with sequential ids; a bad line is
  a `ManifestError` naming the URI and its 1-based line number. An `"id"` the input already carries is replaced, as the
  seed's add_record_id does: ids are positions, so a re-run or a manifest exported by an earlier run gets the same ones.
- `parse_label_categories(raw, uri) -> list[str]` — the label-category file's class names; an index is a position.
- `label_state(record, attr)`, `counts(records, attr)`, `unlabeled_ids(records, attr)` — HUMAN / AUTO / None per
  record; {total, human_labeled, auto_labeled, unlabeled}; the unlabeled ids in file order. `share_of(total, share)`.
- `bootstrap_ids(records, attr, share=0.2)` — the first unlabeled records (file order) that bring human labels up to
  `floor(total * share)`; [] when there are enough.
- `validation_ids(records, attr, share=0.1)` — the first `floor(total * share)` human-labeled records (file order).
  Apply it to the manifest as it stands when the first round starts (after the bootstrap) and keep the answer, as the
  seed does: later human batches are random, so "the first N human-labeled" of a later manifest can differ.
- `training_ids(records, attr, validation)` — every other human label (auto-labels never train the model).
- `augmented_manifest(records, attr, ids)` / `fasttext_lines(records, attr, ids)` — the training channels:
  `{"source", "<attr>"}` lines for `AttributeNames ["source", "<attr>"]`, or File-mode `__label__<index> <text>` lines.
- `transform_input(records, attr, k)` — the unlabeled records as `{"source", "id", "k"}` lines; with `DataProcessing
  {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$['id','SageMakerOutput']"}` each `.out` line comes back
  as `{"id": N, "SageMakerOutput": {"label": [...], "prob": [...]}}`.
- `auto_labels(output_lines, categories, attr, job_name, threshold=0.5, now=..., expected_ids=None) -> AutoLabels` —
  the label of every record whose top-1 minus top-2 probability is > threshold, and every record's margin (for the
  report's histogram); `creation_date(now)` formats Ground Truth's UTC timestamp.
- `next_human_batch(records, attr, seed, round_number, share=0.1)` — a seeded random sample of
  `min(floor(total * share), unlabeled)` of the records still unlabeled (after this round's auto-labels are merged).
- `human_batch_manifest(records, ids, attr)` — the labeling job's input lines (the whole records, `id` included, so the
  job's output.manifest, which keeps every input key, merges back by id); `labels_from_output_manifest(raw, attr, uri,
  expected_ids=None)` — the labels of that output.
- `merge(records, labels, attr)` — a new list with the labels set by id. A record is labeled exactly once: a different
  label on a labeled record is an error naming the id; re-applying the label it already carries changes nothing, so a
  retried merge writes the same bytes.
- `serialize(records)` — deterministic JSON Lines (sorted keys, UTF-8); `final_manifest(records, attr)` — the same,
  refusing while anything is unlabeled (says how many).
- `read_bytes(s3, uri) -> bytes`, `write_bytes(s3, uri, data)` — the only I/O here.

Shares are floored after rounding to 9 decimals (`int(round(total * share, 9))`), so 0.2 of 10,000 is 2,000 and a
share like 0.29 of 100 is 29 rather than float-floored to 28: the seed's `int(total / 5)` and `total // 10`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from groundtruth.manifests import ManifestError, json_lines

TASK_TYPE = "groundtruth/text-classification"
CREATION_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"  # the seed writes %m (month) where minutes belong; this is right
LABEL_PREFIX = "__label__"
HUMAN, AUTO = "human", "auto"


# -- reading ---------------------------------------------------------------------------------------------------------
def parse_input_manifest(raw: bytes, uri: str, attr: str | None = None) -> list[dict]:
    """JSON Lines → records with `"id"` = 0-based position among the non-blank lines (an existing id is replaced).

    Every line must be a JSON object with a string `source`. With `attr`, a line that already carries `<attr>` must be
    a label as Ground Truth writes it (integer class index, `human-annotated` "yes" or "no"), so counting can trust it.
    """
    records: list[dict] = []
    for number, record in json_lines(raw.split(b"\n"), uri):
        if not isinstance(record.get("source"), str):
            found = "no" if "source" not in record else f"a {type(record['source']).__name__}"
            raise ManifestError(f'{uri} line {number}: needs a string "source", found {found}')
        if attr is not None and attr in record:
            problem = _label_problem(record, attr)
            if problem:
                raise ManifestError(f"{uri} line {number}: {problem}")
        record["id"] = len(records)
        records.append(record)
    return records


def parse_label_categories(raw: bytes, uri: str) -> list[str]:
    """Class names from a label-category file (`{"labels": [{"label": "b"}, ...]}`); a class index is a position."""
    try:
        doc = json.loads(raw)
        names = [entry["label"] for entry in doc["labels"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f'{uri}: not a label-category file ({{"labels": [{{"label": ...}}]}}): {exc}') from None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ManifestError(f"{uri}: the labels must be non-empty strings, found {names!r}")
    if len(set(names)) != len(names):
        raise ManifestError(f"{uri}: duplicate labels in {names!r}")
    return names


def _label_problem(record: Mapping, attr: str) -> str | None:
    value = record.get(attr)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return f'"{attr}" must be a class index (an integer >= 0), found {value!r}'
    metadata = record.get(f"{attr}-metadata")
    if not isinstance(metadata, dict) or metadata.get("human-annotated") not in ("yes", "no"):
        return f'"{attr}-metadata" must be an object with "human-annotated" "yes" or "no", found {metadata!r}'
    return None


# -- counting and selection -------------------------------------------------------------------------------------------
def label_state(record: Mapping, attr: str) -> str | None:
    """HUMAN, AUTO, or None (unlabeled), from `<attr>-metadata.human-annotated` as the seed's counts read it."""
    if attr not in record:
        return None
    annotated = (record.get(f"{attr}-metadata") or {}).get("human-annotated")
    if annotated == "yes":
        return HUMAN
    if annotated == "no":
        return AUTO
    raise ManifestError(
        f'record {record.get("id")}: "{attr}" is set but "{attr}-metadata.human-annotated" is {annotated!r}, '
        "not 'yes' or 'no'"
    )


def counts(records: Iterable[Mapping], attr: str) -> dict[str, int]:
    """{"total", "human_labeled", "auto_labeled", "unlabeled"}."""
    tally = {HUMAN: 0, AUTO: 0, None: 0}
    for record in records:
        tally[label_state(record, attr)] += 1
    total = sum(tally.values())
    return {"total": total, "human_labeled": tally[HUMAN], "auto_labeled": tally[AUTO], "unlabeled": tally[None]}


def share_of(total: int, share: float) -> int:
    """floor(total * share), rounded first so binary fractions do not lose one (0.29 * 100 is 29, not 28)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a share must be within [0, 1], got {share}")
    return math.floor(round(total * share, 9))


def unlabeled_ids(records: Iterable[Mapping], attr: str) -> list[int]:
    return [r["id"] for r in records if label_state(r, attr) is None]


def bootstrap_ids(records: Sequence[Mapping], attr: str, share: float = 0.2) -> list[int]:
    """The first unlabeled records (file order) a human job must label so that floor(total * share) are
    human-labeled; [] when enough already are (the seed: `int(total / 5) - human_labeled`, `LIMIT` in file order)."""
    tally = counts(records, attr)
    missing = share_of(tally["total"], share) - tally["human_labeled"]
    return unlabeled_ids(records, attr)[:missing] if missing > 0 else []


def validation_ids(records: Sequence[Mapping], attr: str, share: float = 0.1) -> list[int]:
    """The first floor(total * share) human-labeled records in file order (the seed's `LIMIT total // 10`).

    Take it from the manifest the first round starts from and keep it: see the module docstring.
    """
    size = share_of(len(records), share)
    return [r["id"] for r in records if label_state(r, attr) == HUMAN][:size]


def training_ids(records: Iterable[Mapping], attr: str, validation: Collection[int]) -> list[int]:
    """Every human-labeled record outside the validation set, in file order."""
    held_out = set(validation)
    return [r["id"] for r in records if label_state(r, attr) == HUMAN and r["id"] not in held_out]


def next_human_batch(
    records: Sequence[Mapping], attr: str, seed: str, round_number: int, share: float = 0.1
) -> list[int]:
    """A random sample of min(floor(total * share), unlabeled) of the unlabeled records, sorted by id.

    Seeded by `f"{seed}:{round_number}"`, drawn from the ids in file order, so a re-run picks the same records (the
    seed's `random.sample(set)` is unseeded and fails on Python >= 3.11). As the seed does, a total too small for one
    share-sized batch sends all that is left.
    """
    remaining = unlabeled_ids(records, attr)
    size = share_of(len(records), share) or len(records)
    rng = random.Random(f"{seed}:{round_number}")  # noqa: S311 - a reproducible sample, not a secret
    chosen = rng.sample(remaining, min(size, len(remaining)))
    return sorted(chosen)


# -- training and transform inputs ------------------------------------------------------------------------------------
def _by_id(records: Iterable[Mapping]) -> dict[int, Mapping]:
    return {r["id"]: r for r in records}


def _labeled(records: Sequence[Mapping], attr: str, ids: Iterable[int]) -> list[Mapping]:
    index = _by_id(records)
    chosen = []
    for record_id in sorted(set(ids)):
        record = index.get(record_id)
        if record is None:
            raise ManifestError(f"no record with id {record_id}")
        if label_state(record, attr) is None:
            raise ManifestError(f"record {record_id} is unlabeled and cannot train a model")
        chosen.append(record)
    return chosen


def augmented_manifest(records: Sequence[Mapping], attr: str, ids: Iterable[int]) -> bytes:
    """`{"source": text, "<attr>": index}` lines (id order) for an `AugmentedManifestFile` channel with
    `AttributeNames ["source", "<attr>"]`."""
    return _jsonl({"source": r["source"], attr: r[attr]} for r in _labeled(records, attr, ids))


def fasttext_lines(records: Sequence[Mapping], attr: str, ids: Iterable[int]) -> bytes:
    """`__label__<index> <text>` lines (id order) for a File-mode channel; whitespace runs in a text (newlines
    included) become one space, since a line is a record."""
    lines = (f"{LABEL_PREFIX}{r[attr]} {' '.join(r['source'].split())}\n" for r in _labeled(records, attr, ids))
    return "".join(lines).encode("utf-8")


def transform_input(records: Sequence[Mapping], attr: str, k: int) -> bytes:
    """The unlabeled records as `{"source", "id", "k"}` lines (file order): `k` asks for every class's probability
    (the seed sends k = 1,000,000; the number of classes does the same), `id` comes back through `JoinSource Input`."""
    if k < 2:
        raise ValueError(f"k must be at least 2 to compute a top-1 minus top-2 margin, got {k}")
    return _jsonl({"source": r["source"], "id": r["id"], "k": k} for r in records if label_state(r, attr) is None)


# -- auto-labels ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AutoLabels:
    """What one round's transform output gives: the labels above the threshold and every record's margin."""

    labels: dict[int, dict] = field(default_factory=dict)
    margins: dict[int, float] = field(default_factory=dict)


def creation_date(now: datetime) -> str:
    """Ground Truth's `creation-date` in UTC (a naive datetime is taken as UTC)."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return now.strftime(CREATION_DATE_FORMAT)


def auto_labels(
    output_lines: Iterable[str | bytes],
    categories: Sequence[str],
    attr: str,
    job_name: str,
    *,
    now: datetime,
    threshold: float = 0.5,
    expected_ids: Collection[int] | None = None,
    source: str = "transform output",
) -> AutoLabels:
    """Labels for every `.out` record whose top-1 minus top-2 probability is > `threshold`, and all margins.

    `job_name` becomes `"labeling-job/<job_name>"` as in the seed. Pass a stable `now` (e.g. the transform job's end
    time): it is written as `creation-date`, and a re-run must write the same bytes. With `expected_ids`, the output
    must answer exactly those ids. A malformed line is a `ManifestError` naming `source` and the line number.
    """
    labels: dict[int, dict] = {}
    margins: dict[int, float] = {}
    created = creation_date(now)
    for number, data in json_lines(output_lines, source):
        record_id, classes, probs = _prediction(data, f"{source} line {number}", len(categories))
        if record_id in margins:
            raise ManifestError(f"{source} line {number}: id {record_id} answered twice")
        best = max(range(len(probs)), key=lambda i: (probs[i], -i))
        runner_up = max((p for i, p in enumerate(probs) if i != best), default=0.0)
        margin = probs[best] - runner_up
        margins[record_id] = margin
        if margin > threshold:
            index = classes[best]
            labels[record_id] = {
                attr: index,
                f"{attr}-metadata": {
                    "class-name": categories[index],
                    "confidence": round(margin, 2),
                    "human-annotated": "no",
                    "job-name": f"labeling-job/{job_name}",
                    "type": TASK_TYPE,
                    "creation-date": created,
                },
            }
    if expected_ids is not None:
        _check_ids(set(margins), set(expected_ids), source)
    return AutoLabels(labels, margins)


def _prediction(data: dict, where: str, n_classes: int) -> tuple[int, list[int], list[float]]:
    record_id = data.get("id")
    if not isinstance(record_id, int) or isinstance(record_id, bool):
        raise ManifestError(f'{where}: needs an integer "id", found {record_id!r}')
    answer = data.get("SageMakerOutput")
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("label"), list)
        or not isinstance(answer.get("prob"), list)
    ):
        raise ManifestError(f'{where}: "SageMakerOutput" must be {{"label": [...], "prob": [...]}}, found {answer!r}')
    names, probs = answer["label"], answer["prob"]
    if not names or len(names) != len(probs):
        raise ManifestError(f"{where}: {len(names)} labels for {len(probs)} probabilities")
    classes = []
    for name in names:
        suffix = name[len(LABEL_PREFIX) :] if isinstance(name, str) and name.startswith(LABEL_PREFIX) else ""
        if not suffix.isdigit() or int(suffix) >= n_classes:
            raise ManifestError(f"{where}: label {name!r} is not __label__<index> of one of {n_classes} classes")
        classes.append(int(suffix))
    if not all(isinstance(p, int | float) and not isinstance(p, bool) and 0.0 <= p <= 1.0 for p in probs):
        raise ManifestError(f"{where}: probabilities must be numbers in [0, 1], found {probs!r}")
    return record_id, classes, [float(p) for p in probs]


def _check_ids(found: set[int], expected: set[int], source: str) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        raise ManifestError(
            f"{source}: {len(missing)} expected id(s) missing {_few(missing)}, {len(extra)} unexpected {_few(extra)}"
        )


def _few(ids: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return f"[{shown}{', ...' if len(ids) > limit else ''}]"


# -- human batches ----------------------------------------------------------------------------------------------------
def human_batch_manifest(records: Sequence[Mapping], ids: Iterable[int], attr: str) -> bytes:
    """The labeling job's input: the whole unlabeled records for `ids` (id order), `id` included."""
    index = _by_id(records)
    lines = []
    for record_id in sorted(set(ids)):
        record = index.get(record_id)
        if record is None:
            raise ManifestError(f"no record with id {record_id}")
        if label_state(record, attr) is not None:
            raise ManifestError(f"record {record_id} is already labeled; a labeling job would send it to nobody")
        lines.append(record)
    return _jsonl(lines)


def labels_from_output_manifest(
    raw: bytes, attr: str, uri: str, expected_ids: Collection[int] | None = None
) -> dict[int, dict]:
    """{id: {"<attr>", "<attr>-metadata"}} from a labeling job's output.manifest (it keeps `id` from the input).

    Every line must carry an integer id and a label; with `expected_ids`, exactly those ids (a job that stopped early
    or lost objects must not pass for a finished batch).
    """
    labels: dict[int, dict] = {}
    for number, record in json_lines(raw.split(b"\n"), uri):
        record_id = record.get("id")
        if not isinstance(record_id, int) or isinstance(record_id, bool):
            raise ManifestError(f'{uri} line {number}: needs an integer "id", found {record_id!r}')
        if attr not in record:
            raise ManifestError(f'{uri} line {number}: record {record_id} has no "{attr}" label')
        problem = _label_problem(record, attr)
        if problem:
            raise ManifestError(f"{uri} line {number}: {problem}")
        if record_id in labels:
            raise ManifestError(f"{uri} line {number}: id {record_id} appears twice")
        labels[record_id] = {attr: record[attr], f"{attr}-metadata": record[f"{attr}-metadata"]}
    if expected_ids is not None:
        _check_ids(set(labels), set(expected_ids), uri)
    return labels


# -- merging and export -----------------------------------------------------------------------------------------------
def merge(records: Sequence[Mapping], labels: Mapping[int, Mapping], attr: str) -> list[dict]:
    """A new list of records with `labels` applied by id (only `<attr>` and `<attr>-metadata` are taken).

    A record already carrying a different label is an error naming the id: every line is labeled exactly once. The
    very same label again is a no-op, so re-running a merge over its own output changes nothing.
    """
    index = _by_id(records)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ManifestError(f"labels for ids not in the manifest: {_few(unknown)}")
    meta = f"{attr}-metadata"
    merged = []
    for record in records:
        label = labels.get(record["id"])
        if label is None:
            merged.append(dict(record))
            continue
        problem = _label_problem(label, attr)
        if problem:
            raise ManifestError(f"label for record {record['id']}: {problem}")
        if label_state(record, attr) is not None:
            if record[attr] == label[attr] and record.get(meta) == label[meta]:
                merged.append(dict(record))
                continue
            raise ManifestError(
                f"record {record['id']} is already labeled ({attr}={record[attr]}, "
                f"{record[meta].get('job-name')}); refusing a second label ({attr}={label[attr]}, "
                f"{label[meta].get('job-name')})"
            )
        merged.append({**record, attr: label[attr], meta: dict(label[meta])})
    return merged


def serialize(records: Iterable[Mapping]) -> bytes:
    """JSON Lines, keys sorted, UTF-8: equal records always give the same bytes."""
    return _jsonl(records)


def final_manifest(records: Sequence[Mapping], attr: str) -> bytes:
    """The export: every record labeled, else a `ManifestError` saying how many (and which) are not."""
    left = unlabeled_ids(records, attr)
    if left:
        raise ManifestError(f"{len(left)} of {len(records)} records are still unlabeled (ids {_few(left)})")
    return serialize(records)


def _jsonl(records: Iterable[Mapping]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records).encode("utf-8")


# -- S3 ---------------------------------------------------------------------------------------------------------------
def read_bytes(s3, uri: str) -> bytes:
    """The object's bytes; a missing object is a `ManifestError` naming the URI."""
    from botocore.exceptions import ClientError

    from groundtruth.aws_errors import is_missing_s3_object
    from groundtruth.outputs import split_s3_uri

    bucket, key = split_s3_uri(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if is_missing_s3_object(exc):
            raise ManifestError(f"{uri} does not exist") from exc
        raise


def write_bytes(s3, uri: str, data: bytes, content_type: str = "application/jsonlines") -> None:
    from groundtruth.outputs import split_s3_uri

    bucket, key = split_s3_uri(uri)
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
