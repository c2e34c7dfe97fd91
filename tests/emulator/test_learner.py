"""The auto-labeling learner: it learns from pixels, stores as plain npz, warm-starts, and calibrates honestly."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from emulator.sim.learner import (
    FORMAT_VERSION,
    Detector,
    average_precision,
    calibrate_threshold,
    decode,
)
from emulator.sim.openimages import generate_images
from emulator.sim.workforce import consolidate, worker_answers
from groundtruth.quality import image_miou

TRAIN, VALIDATION, TEST = slice(0, 120), slice(120, 160), slice(160, 220)  # TEST holds the 40 fine-tuning images too


@pytest.fixture(scope="module")
def data():
    """Bird photographs of the mirror with consolidated human boxes (what a labeling job trains on)."""
    images = [m for m in generate_images(220, seed=31) if m.kind == "bird"]
    rng = np.random.default_rng(0)
    human = [[box for box, _ in consolidate(worker_answers(m.reference, 3, rng))] for m in images]
    return [m.jpeg for m in images], human, [m.reference.bird_boxes_px() for m in images]


@pytest.fixture(scope="module")
def trained(data):
    jpegs, human, _ = data
    log: list[tuple[int, float]] = []
    model = Detector.new(seed=1).fit(
        jpegs[TRAIN],
        human[TRAIN],
        epochs=6,
        validation=(jpegs[VALIDATION], human[VALIDATION]),
        on_epoch=lambda epoch, score: log.append((epoch, score)),
    )
    return model, log


def _quality(model: Detector, jpegs, truth) -> tuple[np.ndarray, np.ndarray]:
    predictions = [model.predict(j) for j in jpegs]
    return (
        np.array([image_miou(p.boxes, t) for p, t in zip(predictions, truth, strict=True)]),
        np.array([p.confidence for p in predictions]),
    )


# -- learning from pixels ------------------------------------------------------------------------------------------
def test_training_logs_validation_map_once_per_epoch(trained):
    model, log = trained
    assert [epoch for epoch, _ in log] == list(range(6))
    assert all(0.0 <= score <= 1.0 for _, score in log)
    assert max(score for _, score in log) > 0.1
    assert model.num_training_samples == 120 and model.trained


def test_a_trained_detector_finds_the_birds_an_untrained_one_does_not(data, trained):
    jpegs, _, truth = data
    learned, _ = _quality(trained[0], jpegs[TEST], truth[TEST])
    guessed, _ = _quality(Detector.new(seed=1), jpegs[TEST], truth[TEST])
    assert learned.mean() > 0.3
    assert learned.mean() > guessed.mean() + 0.2
    assert np.mean(learned >= 0.6) > 0.25  # a good share of photographs is labeled well enough to auto-label


def test_image_confidence_ranks_images_by_their_quality(data, trained):
    jpegs, _, truth = data
    quality, confidence = _quality(trained[0], jpegs[TEST], truth[TEST])
    assert np.corrcoef(confidence, quality)[0, 1] > 0.3
    top = confidence >= np.median(confidence)
    assert quality[top].mean() > quality[~top].mean() + 0.15


def test_validation_images_are_calibrated_on_confidences_from_heads_that_never_saw_them(data, trained):
    jpegs, _, _ = data
    model = trained[0]
    held_out = [model.calibration_confidence(j) for j in jpegs[VALIDATION]]
    in_sample = [model.predict(j).confidence for j in jpegs[VALIDATION]]
    assert len(model.calibration_confidences) == len(held_out) == 40
    assert all(0.0 <= c <= 1.0 for c in held_out)
    assert held_out != in_sample  # the deployed head learned from these images; the cross-fitted ones did not
    for jpeg in jpegs[TEST][:5]:  # any other image: the deployed confidence
        assert model.calibration_confidence(jpeg) == model.predict(jpeg).confidence
    loaded = Detector.from_npz(model.to_npz())  # held-out confidences belong to the fit, not to the stored model
    assert loaded.calibration_confidences == {}
    assert loaded.calibration_confidence(jpegs[VALIDATION][0]) == in_sample[0]


def test_predictions_are_pixel_boxes_inside_the_image(data, trained):
    jpegs, _, _ = data
    for jpeg in jpegs[TEST][:20]:
        width, height = decode(jpeg).shape[1::-1]
        prediction = trained[0].predict(jpeg)
        assert 0.0 <= prediction.confidence <= 1.0
        scores = [c for _, c in prediction.boxes]
        assert scores == sorted(scores, reverse=True) or len(scores) < 2
        for (x, y, w, h), c in prediction.boxes:
            assert all(isinstance(v, int) for v in (x, y, w, h))
            assert min(x, y) >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height and 0 <= c <= 1


def test_bytes_and_decoded_arrays_are_seen_alike(data, trained):
    jpeg = data[0][TEST][0]
    assert trained[0].predict(decode(jpeg)) == trained[0].predict(jpeg)


# -- storage and warm starts -----------------------------------------------------------------------------------------
def test_npz_holds_plain_arrays_and_round_trips(data, trained):
    model = trained[0]
    blob = model.to_npz()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        assert int(npz["format_version"]) == FORMAT_VERSION
        assert all(npz[name].dtype != object for name in npz.files)
    loaded = Detector.from_npz(blob)
    for jpeg in data[0][TEST][:8]:
        assert loaded.predict(jpeg) == model.predict(jpeg)
    assert loaded.num_training_samples == 120 and loaded.trained


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_malformed_weights_are_refused_with_a_clear_value_error(trained):
    with pytest.raises(ValueError, match="npz"):
        Detector.from_npz(b"certainly not a model")
    with pytest.raises(ValueError, match="format_version"):
        Detector.from_npz(_npz(weights=np.zeros(3)))
    with pytest.raises(ValueError, match="format version 99"):
        Detector.from_npz(_npz(format_version=np.int32(99)))
    with np.load(io.BytesIO(trained[0].to_npz()), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    with pytest.raises(ValueError, match="lack 'feature_mean'"):
        Detector.from_npz(_npz(**{k: v for k, v in arrays.items() if k != "feature_mean"}))
    with pytest.raises(ValueError, match="cell model"):
        Detector.from_npz(_npz(**{**arrays, "cell_W1": arrays["cell_W1"][:3]}))
    with pytest.raises(ValueError, match="scorer"):
        Detector.from_npz(_npz(**{**arrays, "scorer_W0": arrays["scorer_W0"][:, :2]}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("format_version.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError):
        Detector.from_npz(buf.getvalue())


def test_training_a_loaded_model_continues_from_its_weights(data, trained):
    jpegs, human, truth = data
    more, val = slice(160, 200), (jpegs[VALIDATION], human[VALIDATION])
    loaded = Detector.from_npz(trained[0].to_npz())
    normalisation = loaded.feature_mean.copy()
    start = {k: v.copy() for k, v in loaded.cells.params.items()}
    warm = loaded.fit(jpegs[more], human[more], epochs=3, validation=val)
    cold = Detector.new(seed=1).fit(jpegs[more], human[more], epochs=3, validation=val)

    def distance(params):
        return sum(float(np.abs(params[k] - start[k]).sum()) for k in start)

    assert 0 < distance(warm.cells.params) < 0.5 * distance(cold.cells.params)  # fine-tuned: moved, not retrained
    assert np.array_equal(warm.feature_mean, normalisation)  # a warm start keeps the feature normalisation
    assert warm.num_training_samples == 40
    # what the pretrained model knew is kept: it beats a model that only ever saw the 40 new images
    assert _quality(warm, jpegs[200:], truth[200:])[0].mean() > _quality(cold, jpegs[200:], truth[200:])[0].mean()


def test_fit_refuses_mismatched_inputs():
    with pytest.raises(ValueError):
        Detector.new().fit([b"x"], [[], []])
    with pytest.raises(ValueError):
        Detector.new().fit([], [])


# -- evaluation and calibration -------------------------------------------------------------------------------------
def test_average_precision_at_iou_half():
    truth = [[(0, 0, 10, 10)], [(0, 0, 10, 10), (50, 50, 10, 10)]]
    perfect = [[((0, 0, 10, 10), 0.9)], [((0, 0, 10, 10), 0.8), ((50, 50, 10, 10), 0.7)]]
    assert average_precision(perfect, truth) == pytest.approx(1.0)
    late_miss = [[((0, 0, 10, 10), 0.9)], [((0, 0, 10, 10), 0.8), ((80, 80, 10, 10), 0.7)]]
    assert average_precision(late_miss, truth) == pytest.approx(2 / 3)
    assert average_precision([[], []], truth) == 0.0


def test_threshold_is_the_lowest_whose_images_meet_the_target():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 400)
    quality = np.clip(confidence + rng.normal(0, 0.05, 400), 0, 1)  # a confidence that predicts quality well
    threshold = calibrate_threshold(confidence, quality, target=0.6)
    assert threshold is not None
    above = quality[confidence >= threshold]
    assert above.mean() >= 0.6
    # conservative, yet not far from the threshold where the plain mean just reaches the target
    order = np.argsort(-confidence)
    means = np.cumsum(quality[order]) / np.arange(1, 401)
    loosest = confidence[order][np.nonzero(means >= 0.6)[0].max()]
    assert loosest <= threshold < loosest + 0.1


def test_no_threshold_when_nothing_is_good_enough_or_too_few_images():
    assert calibrate_threshold([0.9, 0.8, 0.7], [0.3, 0.2, 0.1]) is None
    assert calibrate_threshold([0.9] * 5, [1.0] * 5, min_count=10) is None
    assert calibrate_threshold([0.9] * 30, [1.0] * 30) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        calibrate_threshold([0.5, 0.4], [0.3])


def test_a_hard_pending_pool_raises_the_threshold():
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0, 1, 300)
    quality = np.clip(confidence + rng.normal(0, 0.1, 300), 0, 1)
    plain = calibrate_threshold(confidence, quality)
    easy_pool = calibrate_threshold(confidence, quality, pending=rng.uniform(0, 1, 500))
    hard_pool = calibrate_threshold(confidence, quality, pending=rng.uniform(0, plain + 0.05, 500))
    assert plain is not None and easy_pool is not None and hard_pool is not None
    assert easy_pool == pytest.approx(plain, abs=0.05)
    assert hard_pool > plain + 0.02  # the leftovers just above the plain threshold are not good enough on their own
