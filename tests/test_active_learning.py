"""The active-learning loop's pure steps (plugins/groundtruth/active_learning.py), without AWS or Airflow."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from groundtruth import active_learning as al

ATTR = "category"
CATEGORIES = ["b", "e", "t", "m"]
NOW = datetime(2026, 12, 3, 14, 7, 9, 123456, tzinfo=UTC)
URI = "s3://bucket/in/input.manifest"


def _human(index: int, job: str = "labeling-job/seed-text") -> dict:
    return {
        ATTR: index,
        f"{ATTR}-metadata": {
            "class-name": CATEGORIES[index],
            "confidence": 0.97,
            "human-annotated": "yes",
            "job-name": job,
            "type": al.TASK_TYPE,
            "creation-date": "2026-12-03T10:00:00.000000",
        },
    }


def _truth(record_id: int) -> int:
    return int(hashlib.sha256(str(record_id).encode()).hexdigest(), 16) % len(CATEGORIES)


def _corpus(n: int, labeled: int = 0) -> list[dict]:
    """n records, the first `labeled` human-labeled with their true class."""
    lines = [json.dumps({"source": f"headline {i}", **(_human(_truth(i)) if i < labeled else {})}) for i in range(n)]
    return al.parse_input_manifest(("\n".join(lines) + "\n").encode(), URI, ATTR)


def _out_line(record_id: int, probs: list[float]) -> str:
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    answer = {"label": [f"__label__{i}" for i in order], "prob": [probs[i] for i in order]}
    return json.dumps({"id": record_id, "SageMakerOutput": answer})


# -- parsing ----------------------------------------------------------------------------------------------------------
def test_ids_are_sequential_in_file_order_and_replace_existing_ones():
    raw = b'{"source": "a", "id": 77}\n\n{"source": "b"}\r\n   \n{"source": "c", "x": 1}\n'
    records = al.parse_input_manifest(raw, URI)
    assert [(r["source"], r["id"]) for r in records] == [("a", 0), ("b", 1), ("c", 2)]
    assert records[2]["x"] == 1


@pytest.mark.parametrize(
    ("raw", "line", "says"),
    [
        (b'{"source": "a"}\n{"source": "b"\n', 2, "not JSON"),
        (b'{"source": "a"}\n\n["source"]\n', 3, "not an object"),
        (b'{"source": "a"}\n{"text": "b"}\n', 2, 'needs a string "source", found no'),
        (b'{"source": 5}\n', 1, "found a int"),
        (b'{"source": "a"}\n{"source": "b\xff"}\n', 2, "not UTF-8"),
    ],
)
def test_a_bad_line_is_named_by_uri_and_line_number(raw, line, says):
    with pytest.raises(al.ManifestError) as error:
        al.parse_input_manifest(raw, URI)
    assert f"{URI} line {line}:" in str(error.value)
    assert says in str(error.value)


def test_an_existing_label_must_be_a_class_index_with_its_annotation_flag():
    good = json.dumps({"source": "a", **_human(2)})
    bad_index = json.dumps({"source": "b", ATTR: "e", f"{ATTR}-metadata": {"human-annotated": "yes"}})
    no_flag = json.dumps({"source": "c", ATTR: 1, f"{ATTR}-metadata": {"class-name": "e"}})
    assert al.parse_input_manifest(f"{good}\n".encode(), URI, ATTR)[0][ATTR] == 2
    with pytest.raises(al.ManifestError, match=f'{URI} line 2: "{ATTR}" must be a class index'):
        al.parse_input_manifest(f"{good}\n{bad_index}\n".encode(), URI, ATTR)
    with pytest.raises(al.ManifestError, match=f"{URI} line 1: .*human-annotated"):
        al.parse_input_manifest(f"{no_flag}\n".encode(), URI, ATTR)


def test_label_categories_are_read_in_order_and_a_bad_file_is_named():
    raw = json.dumps({"document-version": "2018-11-28", "labels": [{"label": c} for c in CATEGORIES]}).encode()
    assert al.parse_label_categories(raw, "s3://b/cats.json") == CATEGORIES
    with pytest.raises(al.ManifestError, match=r"s3://b/cats\.json"):
        al.parse_label_categories(b'{"labels": [{"name": "b"}]}', "s3://b/cats.json")
    with pytest.raises(al.ManifestError, match="duplicate"):
        al.parse_label_categories(b'{"labels": [{"label": "b"}, {"label": "b"}]}', "s3://b/cats.json")


# -- counting and selection -------------------------------------------------------------------------------------------
def test_counts_read_the_human_annotated_flag():
    records = _corpus(10, labeled=3)
    records = al.merge(records, {5: {**_human(1), f"{ATTR}-metadata": {"human-annotated": "no"}}}, ATTR)
    assert al.counts(records, ATTR) == {"total": 10, "human_labeled": 3, "auto_labeled": 1, "unlabeled": 6}


def test_shares_are_floored_without_losing_one_to_binary_fractions():
    assert al.share_of(10_000, 0.2) == 2000
    assert al.share_of(100, 0.29) == 29  # 100 * 0.29 is 28.999999999999996 in binary
    assert al.share_of(19, 0.1) == 1
    with pytest.raises(ValueError, match="within"):
        al.share_of(10, 1.5)


def test_bootstrap_from_nothing_takes_the_first_fifth_in_file_order():
    assert al.bootstrap_ids(_corpus(50), ATTR) == list(range(10))


def test_bootstrap_tops_up_to_a_fifth_with_the_first_unlabeled():
    records = al.merge(_corpus(50), {7: _human(0), 30: _human(1)}, ATTR)
    assert al.bootstrap_ids(records, ATTR) == [0, 1, 2, 3, 4, 5, 6, 8]  # int(50 / 5) - 2, skipping labeled 7


def test_no_bootstrap_from_a_fifth_or_when_everything_is_labeled():
    assert al.bootstrap_ids(_corpus(50, labeled=10), ATTR) == []
    assert al.bootstrap_ids(_corpus(50, labeled=50), ATTR) == []
    full = _corpus(20, labeled=20)
    assert al.counts(full, ATTR)["unlabeled"] == 0
    assert al.final_manifest(full, ATTR) == al.serialize(full)


def test_validation_is_the_first_tenth_of_human_labels_and_training_the_rest():
    records = al.merge(_corpus(40, labeled=8), {20: _human(2)}, ATTR)
    assert al.validation_ids(records, ATTR) == [0, 1, 2, 3]
    assert al.validation_ids(records, ATTR) == al.validation_ids(json.loads(json.dumps(records)), ATTR)
    assert al.training_ids(records, ATTR, [0, 1, 2, 3]) == [4, 5, 6, 7, 20]


def test_validation_takes_only_human_labels():
    records = al.merge(_corpus(20), {0: {**_human(1), f"{ATTR}-metadata": {"human-annotated": "no"}}}, ATTR)
    records = al.merge(records, {4: _human(0), 9: _human(3)}, ATTR)
    assert al.validation_ids(records, ATTR) == [4, 9]


def test_human_batch_is_a_seeded_sample_of_a_tenth_of_the_total():
    records = _corpus(200, labeled=40)
    first = al.next_human_batch(records, ATTR, seed="run-1", round_number=2)
    assert first == al.next_human_batch(json.loads(json.dumps(records)), ATTR, seed="run-1", round_number=2)
    assert len(first) == 20 and first == sorted(first) and len(set(first)) == 20
    assert all(40 <= i < 200 for i in first)
    assert al.next_human_batch(records, ATTR, seed="run-1", round_number=3) != first
    assert al.next_human_batch(records, ATTR, seed="run-2", round_number=2) != first


def test_human_batch_takes_what_is_left_when_less_than_a_tenth_remains():
    records = _corpus(200, labeled=195)
    assert al.next_human_batch(records, ATTR, seed="s", round_number=1) == [195, 196, 197, 198, 199]
    assert al.next_human_batch(_corpus(200, labeled=200), ATTR, seed="s", round_number=1) == []
    assert al.next_human_batch(_corpus(5), ATTR, seed="s", round_number=1) == [0, 1, 2, 3, 4]  # 5 // 10 == 0


# -- channels ---------------------------------------------------------------------------------------------------------
def test_training_channels_are_deterministic_bytes_in_id_order():
    records = al.merge(_corpus(6, labeled=4), {5: _human(3)}, ATTR)
    records[2]["source"] = "two\nlines  here"
    manifest = al.augmented_manifest(records, ATTR, [5, 2, 0])
    assert manifest == al.augmented_manifest(records, ATTR, [0, 2, 5])
    assert [json.loads(x) for x in manifest.decode().splitlines()] == [
        {"source": "headline 0", ATTR: _truth(0)},
        {"source": "two\nlines  here", ATTR: _truth(2)},
        {"source": "headline 5", ATTR: 3},
    ]
    lines = al.fasttext_lines(records, ATTR, [0, 2, 5]).decode()
    assert lines == f"__label__{_truth(0)} headline 0\n__label__{_truth(2)} two lines here\n__label__3 headline 5\n"
    with pytest.raises(al.ManifestError, match="record 4 is unlabeled"):
        al.augmented_manifest(records, ATTR, [4])


def test_transform_input_sends_the_unlabeled_with_id_and_k():
    records = _corpus(4, labeled=2)
    lines = [json.loads(x) for x in al.transform_input(records, ATTR, k=4).decode().splitlines()]
    assert lines == [{"source": "headline 2", "id": 2, "k": 4}, {"source": "headline 3", "id": 3, "k": 4}]
    with pytest.raises(ValueError, match="k must be at least 2"):
        al.transform_input(records, ATTR, k=1)


# -- auto-labels ------------------------------------------------------------------------------------------------------
def test_auto_labels_take_margins_strictly_above_the_threshold():
    lines = [
        _out_line(10, [0.80, 0.10, 0.06, 0.04]),  # margin 0.70
        _out_line(11, [0.125, 0.625, 0.125, 0.125]),  # margin exactly 0.5 (binary-exact): not above it
        _out_line(12, [0.25, 0.25, 0.25, 0.25]),
        _out_line(13, [0.02, 0.02, 0.01, 0.95]),  # margin 0.93
    ]
    result = al.auto_labels(lines, CATEGORIES, ATTR, "al-run-round-1", now=NOW, expected_ids={10, 11, 12, 13})
    assert sorted(result.labels) == [10, 13]
    assert result.margins == pytest.approx({10: 0.70, 11: 0.50, 12: 0.0, 13: 0.93})
    assert result.labels[10] == {
        ATTR: 0,
        f"{ATTR}-metadata": {
            "class-name": "b",
            "confidence": 0.7,
            "human-annotated": "no",
            "job-name": "labeling-job/al-run-round-1",
            "type": "groundtruth/text-classification",
            "creation-date": "2026-12-03T14:07:09.123456",  # minutes, not the seed's %m month
        },
    }
    assert result.labels[13][ATTR] == 3 and result.labels[13][f"{ATTR}-metadata"]["class-name"] == "m"
    stricter = al.auto_labels(lines, CATEGORIES, ATTR, "j", now=NOW, threshold=0.8)
    assert sorted(stricter.labels) == [13]


def test_auto_label_dates_are_utc():
    other_zone = NOW.astimezone(timezone(timedelta(hours=2)))
    result = al.auto_labels([_out_line(1, [0.9, 0.1])], ["x", "y"], ATTR, "j", now=other_zone)
    assert result.labels[1][f"{ATTR}-metadata"]["creation-date"] == "2026-12-03T14:07:09.123456"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        ('{"SageMakerOutput": {"label": ["__label__0"], "prob": [1.0]}}', 'integer "id"'),
        ('{"id": 3, "SageMakerOutput": [0.9]}', '"SageMakerOutput" must be'),
        ('{"id": 3, "SageMakerOutput": {"label": ["__label__0"], "prob": [0.9, 0.1]}}', "1 labels for 2"),
        ('{"id": 3, "SageMakerOutput": {"label": ["__label__9", "__label__0"], "prob": [0.9, 0.1]}}', "__label__9"),
        ('{"id": 3, "SageMakerOutput": {"label": ["b", "__label__0"], "prob": [0.9, 0.1]}}', "'b'"),
        ('{"id": 3, "SageMakerOutput": {"label": ["__label__1", "__label__0"], "prob": [1.9, 0.1]}}', "in [0, 1]"),
    ],
)
def test_a_malformed_transform_line_is_named(line, says):
    lines = [_out_line(1, [0.9, 0.1, 0.0, 0.0]), line]
    with pytest.raises(al.ManifestError) as error:
        al.auto_labels(lines, CATEGORIES, ATTR, "j", now=NOW, source="s3://b/out/unlabeled.manifest.out")
    assert "s3://b/out/unlabeled.manifest.out line 2:" in str(error.value)
    assert says in str(error.value)


def test_transform_output_must_answer_exactly_the_ids_sent():
    lines = [_out_line(1, [0.9, 0.1]), _out_line(2, [0.9, 0.1])]
    with pytest.raises(al.ManifestError, match=r"1 expected id\(s\) missing \[3\], 1 unexpected \[2\]"):
        al.auto_labels(lines, ["x", "y"], ATTR, "j", now=NOW, expected_ids=[1, 3])
    with pytest.raises(al.ManifestError, match="id 1 answered twice"):
        al.auto_labels([*lines, _out_line(1, [0.5, 0.5])], ["x", "y"], ATTR, "j", now=NOW)


# -- human batches, merging, export -----------------------------------------------------------------------------------
def test_human_batch_manifest_carries_ids_and_refuses_labeled_records():
    records = _corpus(5, labeled=1)
    batch = [json.loads(x) for x in al.human_batch_manifest(records, [4, 2], ATTR).decode().splitlines()]
    assert batch == [{"source": "headline 2", "id": 2}, {"source": "headline 4", "id": 4}]
    with pytest.raises(al.ManifestError, match="record 0 is already labeled"):
        al.human_batch_manifest(records, [0], ATTR)


def test_labels_come_back_from_a_labeling_jobs_output_manifest_by_id():
    out = "\n".join(
        json.dumps({"source": f"headline {i}", "id": i, **_human(i % 4, "labeling-job/r1")}) for i in (2, 4)
    )
    labels = al.labels_from_output_manifest(out.encode(), ATTR, "s3://b/out.manifest", expected_ids=[2, 4])
    assert labels == {2: _human(2, "labeling-job/r1"), 4: _human(0, "labeling-job/r1")}
    with pytest.raises(al.ManifestError, match=r"s3://b/out.manifest: 1 expected id\(s\) missing \[3\]"):
        al.labels_from_output_manifest(out.encode(), ATTR, "s3://b/out.manifest", expected_ids=[2, 3, 4])
    unlabeled = json.dumps({"source": "x", "id": 7})
    with pytest.raises(al.ManifestError, match=r's3://b/out\.manifest line 1: record 7 has no "category"'):
        al.labels_from_output_manifest(unlabeled.encode(), ATTR, "s3://b/out.manifest")


def test_merge_refuses_a_second_label_and_names_the_id():
    records = _corpus(5, labeled=2)
    with pytest.raises(al.ManifestError, match=r"record 1 is already labeled \(category=\d, labeling-job/seed-text\)"):
        al.merge(records, {1: {**_human((_truth(1) + 1) % 4, "labeling-job/r2")}}, ATTR)
    with pytest.raises(al.ManifestError, match=r"ids not in the manifest: \[9\]"):
        al.merge(records, {9: _human(0)}, ATTR)


def test_merge_is_idempotent_and_leaves_its_input_alone():
    records = _corpus(5, labeled=1)
    before = al.serialize(records)
    labels = al.auto_labels([_out_line(3, [0.1, 0.9])], ["x", "y"], ATTR, "j", now=NOW).labels
    once = al.merge(records, labels, ATTR)
    assert al.serialize(records) == before
    assert al.serialize(al.merge(once, labels, ATTR)) == al.serialize(once)
    assert once[3][ATTR] == 1 and al.label_state(once[3], ATTR) == al.AUTO


def test_serialize_is_byte_identical_for_equal_records():
    records = _corpus(3, labeled=1)
    reordered = [dict(reversed(list(r.items()))) for r in records]
    assert al.serialize(records) == al.serialize(reordered) == al.serialize(json.loads(json.dumps(records)))
    assert al.serialize([{"source": "café", "id": 0}]) == '{"id": 0, "source": "café"}\n'.encode()


def test_final_export_refuses_while_anything_is_unlabeled():
    with pytest.raises(al.ManifestError, match=r"3 of 5 records are still unlabeled \(ids \[2, 3, 4\]\)"):
        al.final_manifest(_corpus(5, labeled=2), ATTR)


# -- the whole loop, in pure Python ---------------------------------------------------------------------------------
def _fake_transform(records: list[dict], k: int, round_number: int) -> list[str]:
    """A model that is sure (and right) of about a third of what it sees, unsure of the rest."""
    lines = []
    for sent in (json.loads(x) for x in al.transform_input(records, ATTR, k).decode().splitlines()):
        truth = _truth(sent["id"])
        sure = int(hashlib.sha256(f"{sent['id']}:{round_number}".encode()).hexdigest(), 16) % 3 == 0
        probs = [0.9 if i == truth else 0.1 / (k - 1) for i in range(k)] if sure else [1 / k] * k
        lines.append(_out_line(sent["id"], probs))
    return lines


def _human_job(records: list[dict], ids: list[int], job: str) -> bytes:
    """A labeling job's output.manifest: every input line back with its label (input keys kept)."""
    lines = [json.loads(x) for x in al.human_batch_manifest(records, ids, ATTR).decode().splitlines()]
    return al.serialize({**line, **_human(_truth(line["id"]), f"labeling-job/{job}")} for line in lines)


@pytest.mark.parametrize("labeled", [0, 30, 200])
def test_the_loop_labels_every_line_exactly_once_within_eight_rounds(labeled):
    records = _corpus(200, labeled=labeled)
    times_labeled = {r["id"]: int(al.label_state(r, ATTR) is not None) for r in records}

    def apply(labels: dict[int, dict]) -> list[dict]:
        for record_id in labels:
            times_labeled[record_id] += 1
        return al.merge(records, labels, ATTR)

    boot = al.bootstrap_ids(records, ATTR)
    if boot:
        out = _human_job(records, boot, "bootstrap")
        records = apply(al.labels_from_output_manifest(out, ATTR, "bootstrap", expected_ids=boot))
    assert al.counts(records, ATTR)["human_labeled"] >= 40
    validation = al.validation_ids(records, ATTR)
    assert len(validation) == 20
    rounds = 0
    while al.counts(records, ATTR)["unlabeled"]:
        rounds += 1
        assert rounds <= 8, "20% bootstrap + 10% a round must finish within 8 rounds"
        assert not set(validation) & set(al.training_ids(records, ATTR, validation))
        sent = al.unlabeled_ids(records, ATTR)
        auto = al.auto_labels(_fake_transform(records, 4, rounds), CATEGORIES, ATTR, "al", now=NOW, expected_ids=sent)
        records = apply(auto.labels)
        batch = al.next_human_batch(records, ATTR, seed="test", round_number=rounds)
        if batch:
            out = _human_job(records, batch, f"round-{rounds}")
            records = apply(al.labels_from_output_manifest(out, ATTR, f"round-{rounds}", expected_ids=batch))
    final = al.parse_input_manifest(al.final_manifest(records, ATTR), "final", ATTR)
    assert set(times_labeled.values()) == {1}
    assert [r["id"] for r in final] == list(range(200))
    assert all(r[ATTR] == _truth(r["id"]) for r in final)  # the fake model and the fake humans are both right
    tally = al.counts(final, ATTR)
    assert tally["human_labeled"] + tally["auto_labeled"] == 200
    if labeled == 200:
        assert rounds == 0
    else:
        assert tally["auto_labeled"] > 0 and rounds >= 2
