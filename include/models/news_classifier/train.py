"""Training the news classifier under the SageMaker training toolkit's contract ("your own model", Part 2 of the seed).

Run by a script-mode training job (`sagemaker_program` = train.py, `sagemaker_submit_directory` = this directory as
`sourcedir.tar.gz`), or by hand with the same variables set:
- channels `SM_CHANNEL_TRAIN` (required) and `SM_CHANNEL_VALIDATION` (optional): every file under them, each line
  either File mode `__label__<class> <text>` (as BlazingText reads) or an augmented-manifest JSON line
  `{"source": "<text>", "<attr>": <class>}` (the label attribute is `--label_attribute`, or the one other key);
- hyperparameters as `--key value` (see `parse_args`); the model goes to `SM_MODEL_DIR` as `model.json` + `model.npz`
  (arrays and strings, nothing executable), with this directory's inference.py copied to `code/` so the artifact
  serves as it is; bad input writes the reason to `SM_OUTPUT_DIR/failure` and exits 1 (the job's FailureReason).

The model is described in inference.py, its defaults and figures in README.md. The validation channel (optional) is
only measured, never learned from: the log ends with the train and validation accuracy and what the loop's auto-label
rule (top-1 minus top-2 probability > `--margin`) would do on them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # inference.py beside this file, however it is run

from inference import LABEL_PREFIX, NewsClassifier, tokens


class BadInput(Exception):
    """A reason the job fails: written to SM_OUTPUT_DIR/failure."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # a bad hyperparameter fails the job with a reason, not only a usage line
        raise BadInput(f"hyperparameters: {message}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--alpha", type=float, default=1.0, help="Dirichlet smoothing of P(class | word), > 0")
    parser.add_argument("--kappa", type=float, default=0.5, help="a word seen n times counts n / (n + kappa), >= 0")
    parser.add_argument("--gamma", type=float, default=0.5, help="a word's weight is its KL from the prior ** gamma")
    parser.add_argument("--min_count", type=int, default=1, help="words seen fewer times in training are ignored")
    parser.add_argument("--prior_weight", type=float, default=0.1, help="the uniform 'not sure' vote's weight, >= 0")
    parser.add_argument("--margin", type=float, default=0.5, help="the loop's auto-label rule, for the log's figures")
    parser.add_argument("--label_attribute", default=None, help="the label key of augmented-manifest lines")
    parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--validation", default=os.environ.get("SM_CHANNEL_VALIDATION"))
    parser.add_argument("--output_dir", default=os.environ.get("SM_OUTPUT_DIR", "output"))
    args = parser.parse_args(argv)
    if not args.alpha > 0:  # a zero would leave log(0) in a word's divergence
        raise BadInput(f"hyperparameter alpha must be > 0, got {args.alpha}")
    for name in ("kappa", "gamma", "prior_weight"):
        if not getattr(args, name) >= 0:
            raise BadInput(f"hyperparameter {name} must be >= 0, got {getattr(args, name)}")
    if not 0.0 <= args.margin < 1.0:
        raise BadInput(f"hyperparameter margin must be within [0, 1), got {args.margin}")
    return args


# -- reading the channels ---------------------------------------------------------------------------------------------
def read_channel(path: str | None, channel: str, label_attribute: str | None) -> tuple[list[str], list[str]]:
    """(texts, labels) from every file under a channel directory, in path order; errors name file and line."""
    if not path or not os.path.isdir(path):
        raise BadInput(f"channel {channel}: no directory {path!r} (is SM_CHANNEL_{channel.upper()} set?)")
    files = sorted(p for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith("."))
    texts: list[str] = []
    labels: list[str] = []
    for file in files:
        try:
            lines = file.read_text(encoding="utf-8").split("\n")
        except UnicodeDecodeError as exc:
            raise BadInput(f"channel {channel}: {file.name} is not UTF-8 text ({exc.reason})") from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"channel {channel}: {file.relative_to(path)} line {number}"
            text, label = parse_line(line, where, label_attribute)
            texts.append(text)
            labels.append(label)
    if not texts:
        raise BadInput(f"channel {channel}: no labeled lines under {path}")
    return texts, labels


def parse_line(line: str, where: str, label_attribute: str | None) -> tuple[str, str]:
    """`__label__<class> <text>` or `{"source": text, "<attr>": class}` → (text, class as a string)."""
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record.get("source"), str):
            raise BadInput(f'{where}: needs a string "source"')
        keys = [label_attribute] if label_attribute else [k for k in record if k != "source"]
        if len(keys) != 1 or keys[0] not in record:
            raise BadInput(f"{where}: cannot tell the label attribute among {sorted(record)} (set label_attribute)")
        label = record[keys[0]]
        if (
            isinstance(label, bool)
            or not isinstance(label, int | str)
            or str(label).strip() != str(label)
            or label == ""
        ):
            raise BadInput(f"{where}: the label {label!r} must be a class index or name")
        return record["source"], str(label)
    first, _, text = line.strip().partition(" ")
    if not first.startswith(LABEL_PREFIX) or len(first) == len(LABEL_PREFIX):
        raise BadInput(f"{where}: expected '__label__<class> <text>' or a JSON object, found {line[:60]!r}")
    if text.lstrip().startswith(LABEL_PREFIX):
        raise BadInput(f"{where}: more than one label; this classifier takes one class per text")
    return text, first[len(LABEL_PREFIX) :]


def class_order(labels: list[str]) -> list[str]:
    """Class indexes in numeric order (so "10" follows "9"), names alphabetically."""
    return sorted(set(labels), key=lambda c: (0, int(c), "") if c.isdigit() else (1, 0, c))


# -- fitting ----------------------------------------------------------------------------------------------------------
def fit(
    texts: list[str], labels: list[str], alpha: float, kappa: float, gamma: float, min_count: int, prior_weight: float
) -> NewsClassifier:
    classes = class_order(labels)
    if len(classes) < 2:
        raise BadInput(f"channel train: {len(texts)} texts of only one class {classes}; need at least two")
    column = {c: i for i, c in enumerate(classes)}
    counts: dict[str, np.ndarray] = {}
    for text, label in zip(texts, labels, strict=True):
        for word in tokens(text):
            counts.setdefault(word, np.zeros(len(classes)))[column[label]] += 1
    vocabulary = sorted(w for w, c in counts.items() if c.sum() >= min_count)
    if not vocabulary:
        raise BadInput(f"channel train: no word is seen min_count={min_count} times")
    per_class = Counter(labels)
    prior = np.asarray([per_class[c] for c in classes], dtype=np.float64) / len(labels)
    n = np.stack([counts[w] for w in vocabulary])
    seen = n.sum(axis=1)
    class_given_word = (n + alpha * prior) / (seen + alpha)[:, None]
    # how far a word moves the prior, trusted in proportion to how often it was seen
    divergence = (class_given_word * np.log(class_given_word / prior)).sum(axis=1)
    weight = (seen / (seen + kappa)) * np.maximum(divergence, 0.0) ** gamma
    return NewsClassifier(classes, vocabulary, class_given_word, weight, prior, prior_weight)


def auto_label_rule(probs: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(predicted column, is auto-labeled) under the loop's rule: top-1 minus top-2 probability > margin."""
    ordered = np.sort(probs, axis=1)
    return probs.argmax(axis=1), (ordered[:, -1] - ordered[:, -2]) > margin


def evaluate(model: NewsClassifier, texts: list[str], labels: list[str], margin: float) -> dict:
    column = {c: i for i, c in enumerate(model.classes)}
    truth = np.asarray([column.get(label, -1) for label in labels])
    predicted, auto = auto_label_rule(model.predict_proba(texts), margin)
    right = predicted == truth
    return {
        "accuracy": round(float(right.mean()), 4),
        "auto_labeled_share": round(float(auto.mean()), 4),
        "auto_label_accuracy": round(float(right[auto].mean()), 4) if auto.any() else None,
    }


def train(args: argparse.Namespace) -> NewsClassifier:
    started = time.monotonic()
    texts, labels = read_channel(args.train, "train", args.label_attribute)
    print(f"train: {len(texts)} texts, classes {dict(sorted(Counter(labels).items()))}", flush=True)
    model = fit(texts, labels, args.alpha, args.kappa, args.gamma, args.min_count, args.prior_weight)
    print(f"vocabulary: {len(model.vocabulary)} words", flush=True)
    metrics = {"train": evaluate(model, texts, labels, args.margin)}
    if args.validation:
        val_texts, val_labels = read_channel(args.validation, "validation", args.label_attribute)
        unknown = sorted(set(val_labels) - set(model.classes))
        if unknown:
            # Early rounds of an active-learning loop train on few labels: a rare class may be missing. The model
            # cannot predict it, and its validation records count as wrong; the next round's labels bring it in.
            print(f"validation: classes {unknown} never occur in the train channel; counted as wrong", flush=True)
        metrics["validation"] = evaluate(model, val_texts, val_labels, args.margin)
    model.info = {
        "hyperparameters": {
            k: getattr(args, k) for k in ("alpha", "kappa", "gamma", "min_count", "prior_weight", "margin")
        },
        "metrics": metrics,
        "train_seconds": round(time.monotonic() - started, 3),
    }
    for split, figures in metrics.items():
        print(
            f"#{split}_accuracy: {figures['accuracy']}; auto-labeled at margin > {args.margin}: "
            f"{figures['auto_labeled_share']} of {split}, {figures['auto_label_accuracy']} right",
            flush=True,
        )
    return model


def save(model: NewsClassifier, model_dir: str) -> None:
    os.makedirs(model_dir, exist_ok=True)
    model.save(model_dir)
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(os.path.join(model_dir, "code"), exist_ok=True)
    shutil.copy(os.path.join(here, "inference.py"), os.path.join(model_dir, "code", "inference.py"))


def fail(output_dir: str, reason: str) -> int:
    print(f"training failed: {reason}", file=sys.stderr, flush=True)
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, "failure").write_text(reason, encoding="utf-8")
    return 1


def main(argv: list[str] | None = None) -> int:
    # where a failure goes must be known even when the other hyperparameters do not parse
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--output_dir", default=os.environ.get("SM_OUTPUT_DIR", "output"))
    output_dir = early.parse_known_args(argv)[0].output_dir
    try:
        args = parse_args(argv)
        model = train(args)
        if not all(math.isfinite(x) for x in model.weight):
            raise BadInput("the fitted weights are not finite")
        save(model, args.model_dir)
    except BadInput as exc:
        return fail(output_dir, str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
