"""Open Images selection: hierarchy walk, streaming candidates, size-capped selection, parallel copy."""

from __future__ import annotations

import io

import pytest

from groundtruth.openimages import (
    Candidate,
    class_subtree,
    copy_objects,
    existing_keys,
    head_sizes,
    iter_candidates,
    select_images,
    skip_through,
)

HIERARCHY = {
    "LabelName": "/m/0bl9f",
    "Subcategory": [
        {
            "LabelName": "/m/0jbk",
            "Subcategory": [
                {
                    "LabelName": "/m/015p6",
                    "Subcategory": [{"LabelName": "/m/09b5t"}, {"LabelName": "/m/09ddx"}],
                    "Part": [{"LabelName": "/m/beak"}],
                },
                {"LabelName": "/m/01yrx"},
            ],
        },
        {"LabelName": "/m/0k4j"},
    ],
}

HEADER = (
    "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"
)


def row(image: str, label: str, x0: float = 0.1) -> str:
    return f"{image},xclick,{label},1,{x0},0.5,0.2,0.6,0,0,0,0,0\n"


def test_class_subtree_takes_subcategories_not_parts():
    assert class_subtree(HIERARCHY, "/m/015p6") == {"/m/015p6", "/m/09b5t", "/m/09ddx"}
    assert class_subtree(HIERARCHY, "/m/0k4j") == {"/m/0k4j"}
    with pytest.raises(KeyError, match="/m/nope"):
        class_subtree(HIERARCHY, "/m/nope")


def test_candidates_stream_across_chunks_in_file_order():
    birds = {"/m/015p6", "/m/09b5t"}
    csv = HEADER + "".join(
        [
            row("aaa", "/m/0k4j"),
            row("bbb", "/m/015p6", 0.1),
            row("bbb", "/m/09b5t", 0.2),
            row("bbb", "/m/0k4j"),
            row("ccc", "/m/09b5t"),
            row("skipme", "/m/015p6"),
            row("ddd", "/m/01yrx"),
            row("eee", "/m/015p6"),
        ]
    )
    got = list(iter_candidates(io.BytesIO(csv.encode()), birds, skip={"skipme"}, chunk_rows=2))
    assert [c.image_id for c in got] == ["bbb", "ccc", "eee"]
    assert got[0].boxes == [(0.1, 0.5, 0.2, 0.6), (0.2, 0.5, 0.2, 0.6)]


def test_missing_columns_name_the_column():
    with pytest.raises(ValueError, match="LabelName"):
        list(iter_candidates(io.BytesIO(b"ImageID,XMin\nx,1\n"), {"/m/015p6"}))


def notebook_selection(rows: list[tuple[str, str]], classes: set[str], sizes: dict, limit: int, cap: int) -> list[str]:
    """The seed notebook's serial algorithm: one size check per box line, stop at `limit` images."""
    chosen: dict[str, list] = {}
    for image_id, label in rows:
        if label in classes:
            size = sizes.get(image_id)
            if size is None or size > cap:
                continue
            chosen.setdefault(image_id, []).append(label)
        if len(chosen) == limit:
            break
    return list(chosen)


def test_selection_matches_the_notebooks_serial_algorithm_with_far_fewer_requests():
    rows = []
    sizes = {}
    for i in range(300):
        image = f"{i:016x}"
        sizes[image] = 7_000_000 if i % 17 == 0 else (None if i % 29 == 0 else 1000 + i)
        rows.extend([(image, "/m/015p6")] * (1 + i % 3))
        if i % 5 == 0:
            rows.append((image, "/m/0k4j"))
    csv = HEADER + "".join(row(i, label) for i, label in rows)
    calls = []

    def sizes_of(ids):
        calls.append(len(ids))
        return {i: sizes[i] for i in ids}

    chosen, skipped = select_images(
        iter_candidates(io.BytesIO(csv.encode()), {"/m/015p6"}, chunk_rows=50), sizes_of, 200, 6_000_000, window=64
    )
    expected = notebook_selection(rows, {"/m/015p6"}, sizes, 200, 6_000_000)
    assert [c.image_id for c in chosen] == expected
    assert skipped["too_large"] > 0 and skipped["missing"] > 0
    box_lines = sum(1 for i, label in rows if label == "/m/015p6" and i <= expected[-1])
    assert sum(calls) < box_lines  # one HEAD per image (in windows), not one per box line
    assert max(calls) <= 64


def test_selection_keeps_first_appearance_of_an_image_split_in_the_file():
    cands = [Candidate("a", [(0, 1, 0, 1)]), Candidate("b"), Candidate("a", [(0, 0.5, 0, 0.5)])]
    chosen, skipped = select_images(cands, lambda ids: dict.fromkeys(ids, 10), 5, 100)
    assert [c.image_id for c in chosen] == ["a", "b"] and skipped["duplicate"] == 1


def test_a_selection_resumed_after_an_image_equals_the_slice_of_a_full_selection_and_heads_only_what_follows():
    sizes, lines = {}, []
    for i in range(400):
        image = f"{i:016x}"
        sizes[image] = 7_000_000 if i % 13 == 0 else (None if i % 31 == 0 else 1000 + i)
        lines.append(row(image, "/m/015p6"))
    lines.append(row(f"{5:016x}", "/m/015p6"))  # an early image again, after the resume point: still a duplicate
    csv = (HEADER + "".join(lines)).encode()

    def stream():
        return iter_candidates(io.BytesIO(csv), {"/m/015p6"}, chunk_rows=64)

    full, _ = select_images(stream(), lambda ids: {i: sizes[i] for i in ids}, 300, 6_000_000, window=32)
    asked: list[str] = []

    def sizes_of(ids):
        asked.extend(ids)
        return {i: sizes[i] for i in ids}

    last_of_first_slice = full[99].image_id
    rest, passed = skip_through(stream(), last_of_first_slice)
    resumed, skipped = select_images(rest, sizes_of, 200, 6_000_000, window=32, seen=passed)
    assert [c.image_id for c in resumed] == [c.image_id for c in full[100:300]]
    assert asked and min(asked) > last_of_first_slice  # nothing up to the resume point is headed again
    span = int(full[299].image_id, 16) - int(last_of_first_slice, 16)  # candidates from the resume point to the end
    assert len(asked) <= span + 32  # those, plus at most one window's overshoot
    assert skipped["too_large"] > 0 and skipped["missing"] > 0
    _, dup = select_images(rest, sizes_of, 10_000, 6_000_000, seen=passed | {c.image_id for c in resumed})
    assert dup["duplicate"] == 1  # the repeated early image is not selected twice
    assert skip_through(stream(), "ffffffffffffffff") is None


def test_parallel_heads_and_idempotent_copy(s3):
    s3.create_bucket(Bucket="oi-src")
    s3.create_bucket(Bucket="oi-dst")
    keys = [f"test/{i:016x}.jpg" for i in range(40)]
    for key in keys:
        s3.put_object(Bucket="oi-src", Key=key, Body=b"x" * 10)
    sizes = head_sizes(s3, "oi-src", [*keys, "test/missing.jpg"], workers=8)
    assert sizes["test/missing.jpg"] is None and all(sizes[k] == 10 for k in keys)

    pairs = [("oi-src", k, "oi-dst", f"run/images/{k[5:]}") for k in keys]
    first = copy_objects(s3, pairs[:25], workers=8, log=lambda m: None)
    assert (first.copied, first.skipped_existing) == (25, 0)
    lines = []
    second = copy_objects(s3, pairs, workers=8, log=lines.append, existing=existing_keys(s3, "oi-dst", "run/images/"))
    assert (second.copied, second.skipped_existing) == (15, 25)
    assert lines[-1].startswith("copy: 15/15 copied")
    assert len(existing_keys(s3, "oi-dst", "run/images/")) == 40


def test_a_selection_continued_from_any_windows_record_equals_the_uninterrupted_one():
    sizes, lines = {}, []
    for i in range(300):
        image = f"{i:016x}"
        sizes[image] = 7_000_000 if i % 11 == 0 else (None if i % 23 == 0 else 1000 + i)
        lines.append(row(image, "/m/015p6"))
        if i % 40 == 0:
            lines.append(row(f"{i // 2:016x}", "/m/015p6"))  # an earlier image again: a duplicate
    csv = (HEADER + "".join(lines)).encode()

    def stream():
        return iter_candidates(io.BytesIO(csv), {"/m/015p6"}, chunk_rows=50)

    def sizes_of(ids):
        return {i: sizes[i] for i in ids}

    records = []
    full, full_skipped = select_images(
        stream(),
        sizes_of,
        220,
        6_000_000,
        window=32,
        on_window=lambda last, chosen, skipped: records.append((last, list(chosen), dict(skipped))),
    )
    assert len(records) > 3 and records[-1][1] == full
    for last, chosen, skipped in records[:-1]:
        rest, passed = skip_through(stream(), last)
        more, more_skipped = select_images(rest, sizes_of, 220 - len(chosen), 6_000_000, window=32, seen=passed)
        assert [c.image_id for c in chosen + more] == [c.image_id for c in full]
        assert {k: skipped[k] + more_skipped[k] for k in skipped} == full_skipped
