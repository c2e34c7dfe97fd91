"""The synthetic Open Images mirror: deterministic, references ride inside the JPEGs, the size cap is exercised."""

from __future__ import annotations

import io

from PIL import Image

from emulator.sim.openimages import generate_images, read_reference
from emulator.sim.workforce import consolidate, worker_answers


def test_same_seed_same_bytes_and_references_inside_the_jpeg():
    first = list(generate_images(30, seed=3))
    again = list(generate_images(30, seed=3))
    assert [m.jpeg for m in first] == [m.jpeg for m in again]
    assert [m.jpeg for m in first] != [m.jpeg for m in generate_images(30, seed=4)]
    kinds = {m.kind for m in first}
    assert {"bird", "other", "oversized"} <= kinds
    assert sum(m.kind == "bird" for m in first) == 30
    for image in first:
        ref = read_reference(image.jpeg)
        assert ref is not None and ref.image_id == image.image_id
        assert len(image.image_id) == 16 and int(image.image_id, 16) >= 0
        assert Image.open(io.BytesIO(image.jpeg)).size == (ref.width, ref.height)
        if image.kind == "oversized":
            assert len(image.jpeg) > 6 * 1024 * 1024
        else:
            assert len(image.jpeg) <= 6 * 1024 * 1024
        assert (image.kind == "other") == (not ref.bird_boxes_px())


def test_workers_answer_near_the_truth_and_consolidation_agrees(tmp_path):
    import numpy as np

    from groundtruth.quality import image_miou

    rng = np.random.default_rng(0)
    scores = []
    for image in generate_images(40, seed=5):
        ref = read_reference(image.jpeg)
        if image.kind != "bird":
            continue
        boxes = consolidate(worker_answers(ref, 3, rng))
        assert all(0.0 <= c <= 1.0 for _, c in boxes)
        scores.append(image_miou(boxes, ref.bird_boxes_px()))
    # noisy but competent: most images are labeled well, not all perfectly
    assert 0.6 < sum(scores) / len(scores) < 0.98


def test_plain_jpeg_has_no_reference():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="JPEG")
    assert read_reference(buf.getvalue()) is None
