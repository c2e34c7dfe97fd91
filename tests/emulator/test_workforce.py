"""The simulated workforce: humanly noisy answers from the reference boxes, and ACS-BoundingBox-like consolidation."""

from __future__ import annotations

import numpy as np
import pytest

from emulator.sim.openimages import ImageReference, RefBox, generate_images
from emulator.sim.workforce import PATIENCE_BOXES, consolidate, worker_answers
from groundtruth.quality import image_miou, iou


def _reference(boxes: list[tuple[float, float, float, float]], width: int = 300, height: int = 200, **flags):
    """An image reference from pixel boxes (left, top, width, height), all birds."""
    return ImageReference(
        "00000000000000aa",
        width,
        height,
        [
            RefBox("/m/015p6", True, x / width, (x + w) / width, y / height, (y + h) / height, **flags)
            for x, y, w, h in boxes
        ],
    )


@pytest.fixture(scope="module")
def birds():
    return [m.reference for m in generate_images(60, seed=8) if m.kind == "bird"]


def test_same_generator_same_answers(birds):
    first = [worker_answers(ref, 3, np.random.default_rng(4)) for ref in birds[:10]]
    again = [worker_answers(ref, 3, np.random.default_rng(4)) for ref in birds[:10]]
    assert first == again
    assert first != [worker_answers(ref, 3, np.random.default_rng(5)) for ref in birds[:10]]


def test_workers_are_close_to_the_truth_but_not_exact(birds):
    rng = np.random.default_rng(0)
    single = [worker_answers(ref, 1, rng)[0] for ref in birds]
    quality = [
        image_miou([(b, 1.0) for b in boxes], ref.bird_boxes_px()) for boxes, ref in zip(single, birds, strict=True)
    ]
    assert 0.65 < np.mean(quality) < 0.97
    assert sum(boxes != ref.bird_boxes_px() for boxes, ref in zip(single, birds, strict=True)) > 0.9 * len(birds)
    for boxes, ref in zip(single, birds, strict=True):
        for x, y, w, h in boxes:
            assert min(x, y) >= 0 and w >= 1 and h >= 1 and x + w <= ref.width and y + h <= ref.height


def test_a_large_clear_bird_is_boxed_well_by_every_worker():
    ref = _reference([(100, 50, 120, 90)])
    for answer in worker_answers(ref, 9, np.random.default_rng(1)):
        assert len(answer) == 1
        assert iou(answer[0], (100, 50, 120, 90)) > 0.7


def test_tiny_birds_are_missed_more_often_than_large_ones():
    rng = np.random.default_rng(2)
    tiny = _reference([(20, 20, 6, 5)])
    large = _reference([(20, 20, 80, 60)])
    missed_tiny = sum(not a for _ in range(200) for a in worker_answers(tiny, 1, rng))
    missed_large = sum(not a for _ in range(200) for a in worker_answers(large, 1, rng))
    assert missed_tiny > 3 * max(missed_large, 1)


def test_big_flocks_get_at_least_the_eight_boxes_the_task_asks_for():
    flock = _reference([(10 + 25 * i, 20 + 15 * (i % 3), 18, 12) for i in range(11)])
    for answer in worker_answers(flock, 5, np.random.default_rng(3)):
        assert PATIENCE_BOXES - 3 <= len(answer) <= 12  # at least 8 chosen; a few may be missed or merged


def test_consolidation_averages_agreeing_workers_and_drops_lone_boxes():
    answers = [
        [(10, 10, 50, 40), (200, 100, 30, 30)],
        [(12, 10, 50, 42), (150, 20, 10, 10)],  # a lone extra box
        [(10, 12, 48, 40), (202, 98, 30, 32)],
    ]
    out = consolidate(answers)
    assert len(out) == 2
    (first, c1), (second, c2) = sorted(out)
    assert first == (11, 11, 49, 41)  # the mean of the three workers' edges
    assert second == (201, 99, 30, 31)
    assert 0.85 < c1 < 1.0  # all three agree closely
    assert 0.5 < c2 < 2 / 3  # two of three


def test_consolidation_confidence_reflects_agreement():
    assert consolidate([[(0, 0, 10, 10)]] * 3) == [((0, 0, 10, 10), 1.0)]
    two_of_three = consolidate([[(0, 0, 10, 10)], [(0, 0, 10, 10)], []])
    assert two_of_three == [((0, 0, 10, 10), pytest.approx(0.67, abs=0.01))]
    assert consolidate([[(0, 0, 10, 10)], [], []]) == []
    assert consolidate([]) == [] and consolidate([[], [], []]) == []


def test_one_worker_box_joins_one_cluster_only():
    # worker 2's single box overlaps both of worker 1's boxes; it may support only one of them
    out = consolidate([[(0, 0, 20, 20), (10, 0, 20, 20)], [(5, 0, 20, 20)]], iou_threshold=0.3)
    assert len(out) == 2
    assert sorted(c for _, c in out)[0] < sorted(c for _, c in out)[1]  # the unsupported one is less sure


def test_consolidated_labels_are_close_to_the_truth(birds):
    rng = np.random.default_rng(7)
    scores = [image_miou(consolidate(worker_answers(ref, 3, rng)), ref.bird_boxes_px()) for ref in birds]
    assert 0.7 < np.mean(scores) < 0.97


# -- classification ---------------------------------------------------------------------------------------------------
def _classify(n_items: int, workers: int, seed: int, n_classes: int = 4):
    from emulator.sim.workforce import class_answers, classification_crowd, consolidate_classes, item_difficulty

    rng = np.random.default_rng(seed)
    crowd = classification_crowd(rng, "public.us-east-1")
    truth = rng.integers(n_classes, size=n_items)
    batch, people = [], []
    for t in truth:
        chosen = [crowd[i] for i in rng.choice(len(crowd), size=workers, replace=False)]
        answers = class_answers(int(t), n_classes, chosen, item_difficulty(rng), rng)
        batch.append([(w.worker_id, c) for w, c in zip(chosen, answers, strict=True)])
        people.append(chosen)
    consolidated, evidence = consolidate_classes(batch, n_classes)
    return truth, batch, people, consolidated, evidence, crowd


def test_neighbouring_classes_are_the_likelier_confusions():
    from emulator.sim.workforce import confusion_row

    row = confusion_row(1, 4)
    assert row[1] == 0 and row.sum() == pytest.approx(1.0)
    assert row[0] == row[2] > row[3]


def test_the_crowd_has_a_few_careless_workers():
    from emulator.sim.workforce import CARELESS_SHARE, classification_crowd

    crowd = classification_crowd(np.random.default_rng(0), "public.us-east-1")
    careless = [w for w in crowd if w.careless]
    assert len(careless) == round(len(crowd) * CARELESS_SHARE) > 0
    assert max(w.skill for w in careless) < min(w.skill for w in crowd if not w.careless)
    assert len({w.worker_id for w in crowd}) == len(crowd)


def test_consolidating_three_workers_beats_one_and_confidence_tracks_agreement():
    truth, batch, _, consolidated, _, _ = _classify(1500, 3, seed=3)
    single = np.mean([item[0][1] == t for item, t in zip(batch, truth, strict=True)])
    right = np.array([c == t for (c, _), t in zip(consolidated, truth, strict=True)])
    confidence = np.array([conf for _, conf in consolidated])
    assert 0.8 < single < 0.95  # people err
    assert right.mean() >= 0.95 > single
    unanimous = np.array([len({c for _, c in item}) == 1 for item in batch])
    assert confidence[unanimous].mean() > confidence[~unanimous].mean()
    assert right[confidence >= 0.9].mean() > right[confidence < 0.9].mean()


def test_careless_workers_earn_less_trust():
    _, _, _, _, evidence, crowd = _classify(1500, 3, seed=4)
    agreement = {w: agreed / seen for w, (agreed, seen) in evidence.items()}
    careless = [agreement[w.worker_id] for w in crowd if w.careless and w.worker_id in agreement]
    careful = [agreement[w.worker_id] for w in crowd if not w.careless and w.worker_id in agreement]
    assert careless and np.mean(careless) < np.mean(careful) - 0.15
