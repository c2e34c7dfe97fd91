"""A fastText-style supervised text classifier in numpy: what Amazon SageMaker BlazingText runs in `mode supervised`.

The model is fastText's (Joulin et al., "Bag of Tricks for Efficient Text Classification"), with its conventions:
- **Tokens.** A text is split on whitespace and ends with the end-of-sentence token `</s>`, as fastText reads a line.
  Words seen fewer than `min_count` times in the training texts are dropped as features, but still take part in
  word n-grams (fastText hashes every token of the line).
- **Word n-grams.** Every n-gram of 2..`word_ngrams` consecutive tokens is hashed into one of `buckets` rows, with
  fastText's own FNV-1a word hash and n-gram mixing, so a model sees the same buckets fastText would.
- **Model.** The text vector is the mean of its feature embeddings (`vector_dim` wide, initialised uniform in
  ±1/vector_dim); a linear layer (initialised to zero, no bias) and a softmax give the class probabilities.
- **Training.** SGD on the log loss, the learning rate decaying linearly from `learning_rate` to 0 over `epochs`
  passes (measured in tokens, as fastText does). Examples are shuffled per epoch by the seed and taken in small
  minibatches, whose gradients are summed (each example still gets the full step): numpy-fast and, on these data,
  the same dynamics as fastText's one-example-at-a-time SGD.
- **Early stopping** (`early_stopping`, which BlazingText only allows with a validation channel): after `min_epochs`,
  training stops once validation accuracy has not improved for `patience` epochs, and the best epoch is kept.

Only the embedding rows of features seen in training are stored (a bucket seen in no training text holds only its
random initial value in fastText, and zero here). Weights travel as npz (`allow_pickle=False`) plus a JSON header:
arrays and strings, nothing executable.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.sparse as sp

FORMAT_VERSION = 1
EOS = "</s>"
BATCH = 16
_NGRAM_MIX = np.uint64(116049371)  # fastText's Dictionary::addWordNgrams multiplier


class TrainingInterrupted(Exception):
    """`should_stop()` answered True between two epochs."""


@dataclass(frozen=True)
class FastTextParams:
    """BlazingText's supervised-mode hyperparameters, with its documented defaults (`seed` is ours)."""

    vector_dim: int = 100
    word_ngrams: int = 2
    epochs: int = 5
    learning_rate: float = 0.05
    min_count: int = 5
    min_epochs: int = 5
    early_stopping: bool = False
    patience: int = 4
    buckets: int = 2_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vector_dim", "word_ngrams", "epochs", "min_epochs", "patience", "buckets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"hyperparameter {name} must be a positive integer, got {value!r}")
        if isinstance(self.min_count, bool) or not isinstance(self.min_count, int) or self.min_count < 0:
            raise ValueError(f"hyperparameter min_count must be a non-negative integer, got {self.min_count!r}")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"hyperparameter learning_rate must be a positive number, got {rate!r}")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(f"hyperparameter early_stopping must be True or False, got {self.early_stopping!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"hyperparameter seed must be an integer, got {self.seed!r}")

    @classmethod
    def from_hyperparameters(cls, hps: Mapping[str, str]) -> FastTextParams:
        """Parse a training job's string hyperparameters as BlazingText does.

        `mode` must be `supervised`; word2vec-mode hyperparameters BlazingText accepts (`window_size`, `subwords`,
        ...) are ignored; anything else, or a value that does not parse, is a ValueError naming the hyperparameter.
        """
        mode = hps.get("mode")
        if mode is None:
            raise ValueError("hyperparameter mode is required (BlazingText text classification needs 'supervised')")
        if str(mode).strip() != "supervised":
            raise ValueError(f"hyperparameter mode must be 'supervised' for text classification, got {mode!r}")
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for name, raw in hps.items():
            if name == "mode" or name in _IGNORED_HYPERPARAMETERS:
                continue
            if name not in types:
                raise ValueError(f"hyperparameter {name} is not a BlazingText supervised-mode hyperparameter")
            values[name] = _parse_value(name, types[name], raw)
        return cls(**values)


# Hyperparameters BlazingText accepts in its word2vec modes (or common to all jobs): not used in supervised mode.
_IGNORED_HYPERPARAMETERS = frozenset(
    {"batch_size", "evaluation", "min_char", "max_char", "negative_samples", "sampling_threshold", "subwords",
     "window_size"}
)  # fmt: skip


def _parse_value(name: str, kind: str, raw: object) -> object:
    text = str(raw).strip()
    if kind == "bool":
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"hyperparameter {name} must be True or False, got {raw!r}")
    try:
        if kind == "int":
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        return float(text)
    except (ValueError, OverflowError):
        expected = "an integer" if kind == "int" else "a number"
        raise ValueError(f"hyperparameter {name} must be {expected}, got {raw!r}") from None


# ----------------------------------------------------------------------------------------------------------------
# Text -> features
# ----------------------------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """fastText's reading of a line: whitespace-separated tokens, then `</s>`."""
    return [*text.split(), EOS]


def word_hash(token: str) -> int:
    """fastText's `Dictionary::hash`: 32-bit FNV-1a over the UTF-8 bytes, each byte sign-extended as C's int8_t."""
    h = 2166136261
    for byte in token.encode("utf-8"):
        h ^= (byte - 256 if byte > 127 else byte) & 0xFFFFFFFF
        h = (h * 16777619) & 0xFFFFFFFF
    return h


class _Vocabulary:
    def __init__(self, words: Sequence[str], buckets: int, word_ngrams: int) -> None:
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.buckets = buckets
        self.word_ngrams = word_ngrams
        self._hashes: dict[str, int] = {}

    def raw_features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(feature ids, owning text of each, tokens per text); ids are word ids, or len(words) + bucket."""
        n_words = len(self.words)
        token_ids: list[int] = []
        token_hashes: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        hashes, index = self._hashes, self.index
        for t, text in enumerate(texts):
            tokens = tokenize(text)
            lengths[t] = len(tokens)
            for token in tokens:
                h = hashes.get(token)
                if h is None:
                    h = hashes[token] = word_hash(token)
                token_hashes.append(h)
                token_ids.append(index.get(token, -1))
        ids = np.asarray(token_ids, dtype=np.int64)
        owner = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        parts_ids, parts_owner = [ids[ids >= 0]], [owner[ids >= 0]]
        # fastText keeps word hashes as int32 and widens them to uint64 with sign extension.
        signed = np.asarray(token_hashes, dtype=np.uint32).view(np.int32).astype(np.int64).view(np.uint64)
        mixed = signed.copy()
        for n in range(2, self.word_ngrams + 1):
            if len(signed) < n:
                break
            mixed = mixed[:-1] * _NGRAM_MIX + signed[n - 1 :]
            same_text = owner[: len(mixed)] == owner[n - 1 :]
            parts_ids.append((mixed[same_text] % np.uint64(self.buckets)).astype(np.int64) + n_words)
            parts_owner.append(owner[: len(mixed)][same_text])
        return np.concatenate(parts_ids), np.concatenate(parts_owner), lengths


def _csr(
    rows: np.ndarray, cols: np.ndarray, n_texts: int, n_cols: int, values: np.ndarray | None = None
) -> sp.csr_matrix:
    """A bag of features per text; each occurrence weighs `values`, by default 1/(features of its text)."""
    if values is None:
        per_text = np.bincount(rows, minlength=n_texts).astype(np.float32)
        values = np.float32(1.0) / np.maximum(per_text, 1)[rows]
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(n_texts, n_cols), dtype=np.float32)
    matrix.sum_duplicates()
    return matrix


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    return scores


# ----------------------------------------------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------------------------------------------
class FastTextClassifier:
    """A trained model: `labels`, `predict_proba`, `predict_top_k`, `to_bytes` / `from_bytes`.

    `best_epoch` is the epoch whose weights are kept, `history` the per-epoch `(epoch, train accuracy, validation
    accuracy or None)`.
    """

    def __init__(
        self,
        params: FastTextParams,
        labels: Sequence[str],
        words: Sequence[str],
        feature_ids: np.ndarray,
        embeddings: np.ndarray,
        output: np.ndarray,
        best_epoch: int,
        history: Sequence[tuple[int, float, float | None]],
    ) -> None:
        self.params = params
        self.labels = list(labels)
        self._vocabulary = _Vocabulary(words, params.buckets, params.word_ngrams)
        self._feature_ids = np.asarray(feature_ids, dtype=np.int64)
        self._embeddings = np.asarray(embeddings, dtype=np.float32)
        self._output = np.asarray(output, dtype=np.float32)
        self.best_epoch = best_epoch
        self.history = [(int(e), float(t), None if v is None else float(v)) for e, t, v in history]

    # -- training ------------------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Sequence[str],
        labels: Sequence[str],
        params: FastTextParams,
        validation: tuple[Sequence[str], Sequence[str]] | None = None,
        on_epoch: Callable[[int, float, float | None], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> FastTextClassifier:
        """Train on `texts` with class names `labels`; see the module docstring for what happens.

        `on_epoch(epoch, train accuracy, validation accuracy or None)` is called after every epoch (from 1);
        `should_stop()` is asked before every epoch and `TrainingInterrupted` raised when it answers True.
        """
        texts, labels = list(texts), [str(label) for label in labels]
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} training texts but {len(labels)} labels")
        if not texts:
            raise ValueError("no training texts: the train channel is empty")
        if params.early_stopping and validation is None:
            raise ValueError("hyperparameter early_stopping needs a validation channel, and none was given")
        class_counts = Counter(labels)
        first_seen = {label: i for i, label in reversed(list(enumerate(labels)))}
        # fastText orders labels by frequency; ties keep the order of first appearance.
        label_names = sorted(class_counts, key=lambda c: (-class_counts[c], first_seen[c]))
        label_index = {c: i for i, c in enumerate(label_names)}
        y = np.asarray([label_index[c] for c in labels], dtype=np.int64)

        word_counts = Counter(token for text in texts for token in tokenize(text))
        words = sorted((w for w, c in word_counts.items() if c >= params.min_count), key=lambda w: (-word_counts[w], w))
        vocabulary = _Vocabulary(words, params.buckets, params.word_ngrams)
        raw_ids, owner, lengths = vocabulary.raw_features(texts)
        feature_ids, columns = np.unique(raw_ids, return_inverse=True)
        train_x = _csr(owner, columns, len(texts), len(feature_ids))

        rng = np.random.default_rng(params.seed)
        dim = params.vector_dim
        embeddings = rng.uniform(-1.0 / dim, 1.0 / dim, size=(len(feature_ids), dim)).astype(np.float32)
        output = np.zeros((len(label_names), dim), dtype=np.float32)
        model = cls(params, label_names, words, feature_ids, embeddings, output, 0, [])

        val_x = val_y = None
        if validation is not None:
            val_texts, val_labels = list(validation[0]), [str(label) for label in validation[1]]
            if len(val_texts) != len(val_labels):
                raise ValueError(f"{len(val_texts)} validation texts but {len(val_labels)} labels")
            val_x = model._features(val_texts)
            # A validation class the model never saw is always wrong: index -1 matches no prediction.
            val_y = np.asarray([label_index.get(c, -1) for c in val_labels], dtype=np.int64)

        total_tokens = float(lengths.sum()) * params.epochs
        seen_tokens = 0.0
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        history: list[tuple[int, float, float | None]] = []
        for epoch in range(1, params.epochs + 1):
            if should_stop is not None and should_stop():
                raise TrainingInterrupted(f"training stopped before epoch {epoch} of {params.epochs}")
            order = rng.permutation(len(texts))
            x_epoch, y_epoch, tokens_epoch = train_x[order], y[order], lengths[order]
            seen_tokens = model._sgd_epoch(x_epoch, y_epoch, tokens_epoch, seen_tokens, total_tokens)
            train_accuracy = model._accuracy(train_x, y)
            val_accuracy = None if val_x is None else model._accuracy(val_x, val_y)
            history.append((epoch, train_accuracy, val_accuracy))
            if on_epoch is not None:
                on_epoch(epoch, train_accuracy, val_accuracy)
            if val_accuracy is not None and (best is None or val_accuracy > best[0]):
                best = (val_accuracy, epoch, model._embeddings.copy(), model._output.copy())
            if params.early_stopping and epoch >= params.min_epochs and epoch - best[1] >= params.patience:
                break
        if params.early_stopping:
            _, model.best_epoch, model._embeddings, model._output = best
        else:
            model.best_epoch = history[-1][0]
        model.history = history
        return model

    def _sgd_epoch(self, x: sp.csr_matrix, y: np.ndarray, tokens: np.ndarray, seen: float, total: float) -> float:
        embeddings, output = self._embeddings, self._output
        rate0 = np.float32(self.params.learning_rate)
        indptr, cols, vals = x.indptr, x.indices, x.data
        n = x.shape[0]
        if n == 0:
            return seen
        # Index work for the whole epoch at once: each entry's row, and the entries of each minibatch grouped by
        # feature, so a minibatch's embedding update is a reduceat and one fancy-indexed add of distinct rows.
        lengths = np.diff(indptr)
        rows = np.repeat(np.arange(n), lengths)
        by_feature = np.lexsort((cols, rows // BATCH))
        sorted_cols = cols[by_feature]
        group_start = np.ones(len(cols), dtype=bool)
        group_start[1:] = (sorted_cols[1:] != sorted_cols[:-1]) | (
            rows[by_feature][1:] // BATCH != rows[by_feature][:-1] // BATCH
        )
        group_starts = np.flatnonzero(group_start)
        empty_rows = bool((lengths == 0).any())
        cumulative = seen + np.cumsum(tokens, dtype=np.float64)
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            progress = (cumulative[start] - tokens[start]) / total
            rate = rate0 * np.float32(max(0.0, 1.0 - progress))
            lo, hi = indptr[start], indptr[stop]
            if hi == lo:
                continue
            weighted = vals[lo:hi, None] * embeddings[cols[lo:hi]]
            row_offsets = indptr[start:stop] - lo
            if empty_rows:
                hidden = np.zeros((stop - start, embeddings.shape[1]), dtype=np.float32)
                filled = lengths[start:stop] > 0
                hidden[filled] = np.add.reduceat(weighted, row_offsets[filled], axis=0)
            else:
                hidden = np.add.reduceat(weighted, row_offsets, axis=0)
            probs = _softmax(hidden @ output.T)
            probs[np.arange(stop - start), y[start:stop]] -= 1.0  # d loss / d scores = p - onehot
            probs *= -rate
            grad_hidden = probs @ output
            output += probs.T @ hidden
            entries = by_feature[lo:hi]
            update = vals[entries, None] * grad_hidden[rows[entries] - start]
            first = group_starts[np.searchsorted(group_starts, lo) : np.searchsorted(group_starts, hi)]
            embeddings[sorted_cols[first]] += np.add.reduceat(update, first - lo, axis=0)
        return float(cumulative[-1])

    def _accuracy(self, x: sp.csr_matrix, y: np.ndarray) -> float:
        if x.shape[0] == 0:
            return 0.0
        return float(np.mean(self._scores(x).argmax(axis=1) == y))

    # -- prediction ----------------------------------------------------------------------------------------------
    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        raw_ids, owner, _ = self._vocabulary.raw_features(list(texts))
        per_text = np.bincount(owner, minlength=len(texts)).astype(np.float32)
        position = np.searchsorted(self._feature_ids, raw_ids)
        position = np.minimum(position, max(len(self._feature_ids) - 1, 0))
        known = (self._feature_ids[position] == raw_ids) if len(self._feature_ids) else np.zeros(len(raw_ids), bool)
        # Unseen buckets count in the mean with a zero vector (fastText: their untrained, near-zero initial values).
        values = (np.float32(1.0) / np.maximum(per_text, 1))[owner[known]]
        return _csr(owner[known], position[known], len(texts), len(self._feature_ids), values)

    def _scores(self, x: sp.csr_matrix) -> np.ndarray:
        hidden = np.asarray(x @ self._embeddings, dtype=np.float32)
        return hidden @ self._output.T

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)), columns in `labels` order; rows sum to 1."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float64)
        return _softmax(self._scores(self._features(texts)).astype(np.float64))

    def predict_top_k(self, texts: Sequence[str], k: int = 1) -> list[tuple[list[str], list[float]]]:
        """For each text, the `k` most probable labels and their probabilities, most probable first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        probs = self.predict_proba(texts)
        k = min(k, len(self.labels))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            ([self.labels[j] for j in row], [float(p) for p in prob[row]])
            for row, prob in zip(order, probs, strict=True)
        ]

    # -- persistence ---------------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model as an npz archive: arrays plus a JSON header (labels, vocabulary, hyperparameters, history)."""
        header = {
            "format": "emulator-fasttext",
            "format_version": FORMAT_VERSION,
            "params": asdict(self.params),
            "labels": self.labels,
            "words": self._vocabulary.words,
            "best_epoch": self.best_epoch,
            "history": [list(h) for h in self.history],
        }
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            feature_ids=self._feature_ids,
            embeddings=self._embeddings,
            output=self._output,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FastTextClassifier:
        """Load `to_bytes` output; never unpickles. A file of another kind is a ValueError saying what is wrong."""
        try:
            with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in ("header", "feature_ids", "embeddings", "output")}
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:  # not our npz
            raise ValueError(f"not a fastText model archive: {exc}") from exc
        try:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        except ValueError as exc:
            raise ValueError(f"fastText model archive header is not JSON: {exc}") from exc
        if not isinstance(header, dict):
            header = {}
        if header.get("format") != "emulator-fasttext" or header.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model archive format {header.get('format')!r} v{header.get('format_version')!r} is not "
                f"emulator-fasttext v{FORMAT_VERSION}"
            )
        try:
            return cls(
                FastTextParams(**header["params"]),
                header["labels"],
                header["words"],
                arrays["feature_ids"],
                arrays["embeddings"],
                arrays["output"],
                header["best_epoch"],
                [tuple(h) for h in header["history"]],
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"fastText model archive header lacks or garbles {exc}") from exc
