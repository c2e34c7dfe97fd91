"""The fastText-style classifier behind the emulator's BlazingText: it learns, is deterministic, stops early on the best
epoch, parses BlazingText's hyperparameters strictly, and travels as arrays (never pickle)."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from emulator.sim.fasttext import FastTextClassifier, FastTextParams, TrainingInterrupted

TOPICS = {
    "sport": ["match", "goal", "coach", "league", "striker", "season", "cup", "referee"],
    "food": ["recipe", "bake", "flour", "oven", "spice", "dinner", "sauce", "chef"],
    "travel": ["flight", "hotel", "beach", "passport", "island", "tour", "luggage", "train"],
}
COMMON = ["the", "a", "new", "best", "today", "why", "how", "big", "week", "our"]


def toy_task(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Three topics, each text four topic words among shared filler words: separable by its words."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, labels = [], []
    for _ in range(n):
        topic = names[int(rng.integers(len(names)))]
        words = list(rng.choice(TOPICS[topic], size=4)) + list(rng.choice(COMMON, size=3))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topic)
    return texts, labels


FAST = FastTextParams(vector_dim=10, epochs=10, learning_rate=0.5, min_count=1, min_epochs=1, buckets=10_000)


def test_learns_a_separable_toy_task():
    texts, labels = toy_task(600, seed=1)
    test_texts, test_labels = toy_task(300, seed=2)
    model = FastTextClassifier.train(texts, labels, FAST)

    probs = model.predict_proba(test_texts)
    assert probs.shape == (300, 3)
    assert np.allclose(probs.sum(axis=1), 1.0)
    predicted = [model.labels[i] for i in probs.argmax(axis=1)]
    accuracy = np.mean([p == t for p, t in zip(predicted, test_labels, strict=True)])
    print(f"toy-task accuracy {accuracy:.3f}, train accuracy by epoch {[round(h[1], 3) for h in model.history]}")
    assert accuracy >= 0.97
    assert sorted(model.labels) == sorted(TOPICS)

    top = model.predict_top_k(["chef bake flour sauce"], k=5)[0]
    assert top[0][0] == "food" and len(top[0]) == 3  # k is clipped to the classes there are
    assert top[1] == pytest.approx(sorted(model.predict_proba(["chef bake flour sauce"])[0].tolist(), reverse=True))


def test_training_is_deterministic_for_a_seed():
    texts, labels = toy_task(300, seed=3)
    first = FastTextClassifier.train(texts, labels, FAST)
    again = FastTextClassifier.train(texts, labels, FAST)
    other = FastTextClassifier.train(texts, labels, FastTextParams(**{**FAST.__dict__, "seed": 7}))
    assert first.to_bytes() == again.to_bytes()
    assert first.to_bytes() != other.to_bytes()


def test_early_stopping_keeps_the_best_epoch():
    texts, labels = toy_task(400, seed=4)
    # A validation set whose labels are half wrong: its accuracy peaks and wanders, so patience has work to do.
    val_texts, val_labels = toy_task(200, seed=5)
    rng = np.random.default_rng(0)
    val_labels = [lab if rng.random() < 0.5 else str(rng.choice(list(TOPICS))) for lab in val_labels]
    params = FastTextParams(
        vector_dim=10, epochs=30, learning_rate=0.02, min_count=1, min_epochs=2, early_stopping=True, patience=2,
        buckets=10_000,
    )  # fmt: skip
    seen: list[tuple[int, float, float | None]] = []
    model = FastTextClassifier.train(
        texts, labels, params, validation=(val_texts, val_labels), on_epoch=lambda *row: seen.append(row)
    )
    validation = [v for _, _, v in seen]
    best = int(np.argmax(validation)) + 1  # the first epoch with the highest validation accuracy
    print(f"validation accuracy by epoch {[round(v, 3) for v in validation]}, kept epoch {model.best_epoch}")
    assert seen == model.history
    assert model.best_epoch == best
    assert len(seen) < params.epochs  # it stopped early ...
    assert len(seen) == max(best + params.patience, params.min_epochs)  # ... exactly `patience` epochs after the best
    assert validation[-1] < validation[best - 1]  # the last epoch was worse ...
    predicted = [model.labels[i] for i in model.predict_proba(val_texts).argmax(axis=1)]
    kept = np.mean([p == t for p, t in zip(predicted, val_labels, strict=True)])
    assert kept == pytest.approx(validation[best - 1])  # ... and the weights kept are the best epoch's


def test_early_stopping_needs_a_validation_channel():
    texts, labels = toy_task(50, seed=6)
    with pytest.raises(ValueError, match="early_stopping"):
        FastTextClassifier.train(texts, labels, FastTextParams(early_stopping=True, min_count=1))


def test_should_stop_interrupts_between_epochs():
    texts, labels = toy_task(100, seed=7)
    epochs: list[int] = []
    with pytest.raises(TrainingInterrupted, match="before epoch 3"):
        FastTextClassifier.train(
            texts, labels, FAST, on_epoch=lambda e, *_: epochs.append(e), should_stop=lambda: len(epochs) == 2
        )
    assert epochs == [1, 2]


def test_from_bytes_round_trips_predictions_exactly():
    texts, labels = toy_task(300, seed=8)
    model = FastTextClassifier.train(texts, labels, FAST, validation=toy_task(50, seed=9))
    unseen = toy_task(100, seed=10)[0] + ["words nobody has seen", ""]
    loaded = FastTextClassifier.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.predict_proba(unseen), model.predict_proba(unseen))
    assert loaded.labels == model.labels and loaded.params == model.params
    assert loaded.best_epoch == model.best_epoch and loaded.history == model.history
    assert loaded.predict_top_k(unseen, 2) == model.predict_top_k(unseen, 2)


def test_model_bytes_are_arrays_and_never_unpickled(monkeypatch):
    texts, labels = toy_task(100, seed=11)
    data = FastTextClassifier.train(texts, labels, FAST).to_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must never be used to load a model")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    FastTextClassifier.from_bytes(data)

    smuggled = io.BytesIO()
    np.savez(smuggled, header=np.array([{"evil": True}], dtype=object), feature_ids=np.zeros(1))
    with pytest.raises(ValueError, match="not a fastText model archive"):
        FastTextClassifier.from_bytes(smuggled.getvalue())


def test_params_defaults_are_blazingtexts_documented_ones():
    assert FastTextParams() == FastTextParams(
        vector_dim=100, word_ngrams=2, epochs=5, learning_rate=0.05, min_count=5, min_epochs=5,
        early_stopping=False, patience=4, buckets=2_000_000, seed=0,
    )  # fmt: skip


def test_from_hyperparameters_parses_the_seeds_strings():
    params = FastTextParams.from_hyperparameters(
        {"mode": "supervised", "epochs": "20", "learning_rate": "0.05", "min_count": "5", "min_epochs": "1",
         "early_stopping": "True", "patience": "5", "vector_dim": "20", "word_ngrams": "2",
         "window_size": "5", "subwords": "false"}  # word2vec-mode names BlazingText accepts: ignored
    )  # fmt: skip
    assert params == FastTextParams(
        vector_dim=20, word_ngrams=2, epochs=20, learning_rate=0.05, min_count=5, min_epochs=1,
        early_stopping=True, patience=5,
    )  # fmt: skip
    assert (
        FastTextParams.from_hyperparameters({"mode": "supervised", "early_stopping": "false"}).early_stopping is False
    )


@pytest.mark.parametrize(
    ("hyperparameters", "named"),
    [
        ({"mode": "supervised", "epochs": "five"}, "epochs"),
        ({"mode": "supervised", "epochs": "2.5"}, "epochs"),
        ({"mode": "supervised", "learning_rate": "-0.1"}, "learning_rate"),
        ({"mode": "supervised", "early_stopping": "yes please"}, "early_stopping"),
        ({"mode": "supervised", "vector_dim": "0"}, "vector_dim"),
        ({"mode": "supervised", "min_count": "-1"}, "min_count"),
        ({"mode": "supervised", "dropout": "0.1"}, "dropout"),
        ({"mode": "skipgram"}, "mode"),
        ({"epochs": "3"}, "mode"),
    ],
)
def test_from_hyperparameters_errors_name_the_hyperparameter(hyperparameters, named):
    with pytest.raises(ValueError, match=f"hyperparameter {named}"):
        FastTextParams.from_hyperparameters(hyperparameters)
