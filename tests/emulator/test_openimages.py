"""The synthetic Open Images mirror: real taxonomy, the real files' shapes, references inside the JPEGs, S3 seeding."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from emulator.sim.openimages import (
    BIRD,
    BIRD_SUBCLASSES,
    CSV_HEADER,
    SIZE_LIMIT,
    ImageReference,
    RefBox,
    class_descriptions_csv,
    embed_segments,
    frames_cache_path,
    generate_images,
    hierarchy,
    mirror_plan,
    padding_segments,
    read_reference,
    render,
    seed_openimages,
)
from emulator.sim.scenes import paint_scene
from groundtruth.openimages import class_subtree

REAL_BIRD_LABELS = {  # from Open Images' class-descriptions-boxable.csv
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


def _walk(node: dict, path: tuple[str, ...] = ()):
    yield node, path
    for key in ("Subcategory", "Part"):
        for child in node.get(key, []):
            yield from _walk(child, (*path, node["LabelName"]))


# -- taxonomy --------------------------------------------------------------------------------------------------------
def test_bird_has_its_17_real_subclasses_one_level_down_under_animal():
    tree = hierarchy()
    assert tree["LabelName"] == "/m/0bl9f"
    bird, path = next((n, p) for n, p in _walk(tree) if n["LabelName"] == BIRD)
    assert path == ("/m/0bl9f", "/m/0jbk")  # Entity > Animal > Bird
    assert {c["LabelName"] for c in bird["Subcategory"]} == set(REAL_BIRD_LABELS.values())
    assert all("Subcategory" not in c for c in bird["Subcategory"])
    assert BIRD_SUBCLASSES == REAL_BIRD_LABELS
    assert class_subtree(tree, BIRD) == {BIRD, *REAL_BIRD_LABELS.values()}


def test_hierarchy_has_parts_and_class_descriptions_name_every_class():
    tree = hierarchy()
    labels = {n["LabelName"] for n, _ in _walk(tree)}
    assert any("Part" in n for n, _ in _walk(tree))  # e.g. Person's Human body, Land vehicle's Auto part
    rows = list(csv.reader(io.StringIO(class_descriptions_csv())))
    names = dict(rows)
    assert all(len(row) == 2 for row in rows) and rows[0][0].startswith("/m/")  # no header
    assert labels - {"/m/0bl9f"} <= set(names)
    assert names[BIRD] == "Bird" and names["/m/0cmf2"] == "Airplane" and names["/m/0bt9lr"] == "Dog"


# -- the reference inside the JPEG ----------------------------------------------------------------------------------
def test_reference_rides_in_a_com_segment_read_without_decoding_pixels():
    image = render(0, "bird", seed=11)
    ref = read_reference(image.jpeg)
    assert ref == image.reference
    assert ref.bird_boxes_px() and all(w > 0 and h > 0 for _, _, w, h in ref.bird_boxes_px())
    # everything after the first scan is irrelevant: corrupt it and the reference is still there
    sos = image.jpeg.index(b"\xff\xda")
    assert read_reference(image.jpeg[: sos + 4] + b"\x00" * 64) == ref
    assert read_reference(b"not a jpeg") is None
    assert read_reference(image.jpeg[:3]) is None


def test_oversized_images_are_valid_padded_jpegs():
    small = render(1, "bird", seed=11)
    padded = embed_segments(small.jpeg, padding_segments(SIZE_LIMIT + 10_000 - len(small.jpeg)))
    assert len(padded) > SIZE_LIMIT
    assert read_reference(padded) == small.reference
    with Image.open(io.BytesIO(padded)) as img:
        assert np.array_equal(np.asarray(img), np.asarray(Image.open(io.BytesIO(small.jpeg))))


def test_reference_pixels_match_the_fractions():
    ref = ImageReference("0123456789abcdef", 200, 100, [RefBox("/m/015p6", True, 0.1, 0.5, 0.2, 0.6)])
    assert ref.bird_boxes_px() == [(20, 20, 80, 40)]
    assert ImageReference.from_json(json.loads(ref.to_json())["openimages-reference"]) == ref


# -- what the photographs hold --------------------------------------------------------------------------------------
def test_mirror_plan_has_birds_others_and_a_few_oversized_in_a_mixed_order():
    for n in (10, 400, 2500):
        counts = Counter(mirror_plan(n, seed=0))
        assert counts["bird"] == n
        assert counts["other"] == max(3, round(0.2 * n))
        assert 3 <= counts["oversized"] <= 5
    plan = mirror_plan(400, seed=0)
    assert plan != sorted(plan) and plan == mirror_plan(400, seed=0)


def test_bird_photographs_look_like_open_images_bird_photographs():
    scenes = [paint_scene(np.random.default_rng([22, i])) for i in range(300)]
    birds = np.array([sum(o.is_bird for o in s.objects) for s in scenes])
    assert birds.min() >= 1
    assert np.mean(birds == 1) > 0.45  # mostly one bird ...
    assert birds.max() >= 8  # ... with a tail of flocks
    assert 1.5 < birds.mean() < 2.8
    flags = Counter()
    for s in scenes:
        h, w, _ = s.pixels.shape
        assert 200 <= h <= 360 and 200 <= w <= 360
        for o in s.objects:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            flags.update(k for k in ("occluded", "truncated", "group") if getattr(o, k) and o.is_bird)
            flags["distractor"] += not o.is_bird
    assert all(flags[k] > 0 for k in ("occluded", "truncated", "group", "distractor"))
    sides = [np.sqrt((o.box[2] - o.box[0]) * (o.box[3] - o.box[1])) for s in scenes for o in s.objects if o.is_bird]
    assert min(sides) < 16 and max(sides) > 150  # from specks to portraits


def test_subprocess_painters_give_the_same_bytes():
    alone = [m.jpeg for m in generate_images(12, seed=5, processes=1)]
    assert [m.jpeg for m in generate_images(12, seed=5, processes=2)] == alone


def test_a_cached_mirror_reads_back_the_same_files_and_a_cut_short_one_is_not_kept(tmp_path):
    painted = [(m.image_id, m.kind, m.jpeg) for m in generate_images(12, seed=5, processes=1)]
    # a consumer that stops early leaves nothing behind: no complete cache, no partial file
    stopped = generate_images(12, seed=5, processes=1, cache_dir=tmp_path)
    next(stopped)
    stopped.close()
    assert list(tmp_path.iterdir()) == []

    first = [(m.image_id, m.kind, m.jpeg) for m in generate_images(12, seed=5, processes=2, cache_dir=tmp_path)]
    (cache,) = tmp_path.iterdir()
    assert cache == frames_cache_path(tmp_path, 12, 5) and first == painted
    assert [(m.image_id, m.kind, m.jpeg) for m in generate_images(12, seed=5, cache_dir=tmp_path)] == painted
    assert frames_cache_path(tmp_path, 12, 6) != cache  # another seed, another file

    cache.write_bytes(cache.read_bytes()[:-100])  # a cache cut short (a full disk, a copy gone wrong)
    with pytest.raises(RuntimeError, match=f"mirror cache {cache} is truncated; delete it"):
        list(generate_images(12, seed=5, cache_dir=tmp_path))


# -- seeding a bucket ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_mirror(emulator, s3):
    first = seed_openimages(emulator.url, images=24, seed=9, bucket="mirror-small")
    again = seed_openimages(emulator.url, images=24, seed=9, bucket="mirror-small")
    return first, again


def test_seed_uploads_images_and_the_three_annotation_files(s3, small_mirror):
    first, again = small_mirror
    assert first["bird_images"] == 24 and first["other_images"] == 5 and first["oversized_images"] == 3
    assert first["uploaded"] == 24 + 5 + 3 + 3
    assert again["uploaded"] == 0 and again["bytes"] == first["bytes"]  # idempotent
    keys = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="mirror-small")["Contents"]}
    images = {k: v for k, v in keys.items() if k.startswith("test/")}
    assert len(images) == 32 and all(len(k) == len("test/0123456789abcdef.jpg") for k in images)
    assert sum(v > SIZE_LIMIT for v in images.values()) == 3
    for key in ("bbox_labels_600_hierarchy.json", "class-descriptions-boxable.csv", "test-annotations-bbox.csv"):
        assert f"annotations/{key}" in keys


def test_annotation_csv_is_v4_shaped_grouped_by_image_and_agrees_with_the_jpegs(s3, small_mirror):
    body = s3.get_object(Bucket="mirror-small", Key="annotations/test-annotations-bbox.csv")["Body"].read().decode()
    assert body.splitlines()[0] == CSV_HEADER
    rows = list(csv.DictReader(io.StringIO(body)))
    order = [r["ImageID"] for r in rows]
    runs = [image for i, image in enumerate(order) if i == 0 or order[i - 1] != image]
    assert len(runs) == len(set(runs))  # each image's rows are together
    assert runs != sorted(runs)
    birds = class_subtree(hierarchy(), BIRD)
    by_image: dict[str, list[dict]] = {}
    for r in rows:
        assert 0.0 <= float(r["XMin"]) < float(r["XMax"]) <= 1.0 and 0.0 <= float(r["YMin"]) < float(r["YMax"]) <= 1.0
        assert r["Confidence"] == "1" and r["IsDepiction"] == "0" and r["IsInside"] == "0"
        by_image.setdefault(r["ImageID"], []).append(r)
    some = runs[0]
    jpeg = s3.get_object(Bucket="mirror-small", Key=f"test/{some}.jpg")["Body"].read()
    ref = read_reference(jpeg)
    assert [b.label_name for b in ref.boxes] == [r["LabelName"] for r in by_image[some]]
    bird_images = {i for i, rs in by_image.items() if any(r["LabelName"] in birds for r in rs)}
    assert len(bird_images) == 24 + 3  # the oversized ones are bird photographs too
