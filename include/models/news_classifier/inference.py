"""Serving the news classifier under the SageMaker inference toolkit's contract, and the model's arithmetic.

`model_fn(model_dir)` loads `model.json` + `model.npz` (arrays only, `allow_pickle=False`); `input_fn(body,
content_type)` reads `application/jsonlines` (one `{"source": "<text>", "k": n}` per line; other keys such as `id`
are ignored) or `application/json` (one such object, a list of them, or BlazingText's `{"instances": [...],
"configuration": {"k": n}}`); `predict_fn` scores them; `output_fn(prediction, accept)` writes, per record,
BlazingText's answer shape `{"label": ["__label__2", ...], "prob": [0.91, ...]}`: the `k` most probable classes
(default 1, as BlazingText), most probable first, so the code that reads BlazingText's transform output reads this too.

The model (trained by train.py): a *linear opinion pool* of word votes. Each known word w votes with its smoothed class
distribution P(c | w), weighted by how much it says (its KL divergence from the class prior, to the power `gamma`,
times n_w / (n_w + kappa) for a word seen n_w times); the prior votes too, with weight `prior_weight`:

    P(c | text) = (prior_weight * prior(c) + sum_w a_w P(c | w)) / (prior_weight + sum_w a_w)

Unlike logistic regression or naive Bayes, which multiply evidence (a headline with one strong business word and one
strong entertainment word comes out sure of whichever weighs more), a pool of votes splits between them, so the top-1
minus top-2 margin the active-learning loop thresholds stays low exactly where the headline is ambiguous.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

FORMAT = "news-classifier/1"
LABEL_PREFIX = "__label__"
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Distinct lower-cased word tokens (a word votes once however often it appears)."""
    return list(dict.fromkeys(_TOKEN.findall(text.lower())))


class NewsClassifier:
    """The fitted arrays and the pool; built by train.py, saved and loaded as JSON + npz."""

    def __init__(
        self,
        classes: list[str],
        vocabulary: list[str],
        class_given_word: np.ndarray,
        weight: np.ndarray,
        prior: np.ndarray,
        prior_weight: float,
        info: dict | None = None,
    ):
        self.classes = list(classes)
        self.vocabulary = list(vocabulary)
        self.rows = {word: i for i, word in enumerate(self.vocabulary)}
        self.class_given_word = np.asarray(class_given_word, dtype=np.float64)
        self.weight = np.asarray(weight, dtype=np.float64)
        self.prior = np.asarray(prior, dtype=np.float64)
        self.prior_weight = float(prior_weight)
        self.info = dict(info or {})

    def votes(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the summed weighted word votes (texts x classes) and the summed weights (n)."""
        votes = np.zeros((len(texts), len(self.classes)))
        weights = np.zeros(len(texts))
        weighted = self.class_given_word * self.weight[:, None]
        for i, text in enumerate(texts):
            rows = [self.rows[t] for t in tokens(text) if t in self.rows]
            if rows:
                votes[i] = weighted[rows].sum(axis=0)
                weights[i] = self.weight[rows].sum()
        return votes, weights

    def predict_proba(self, texts: list[str], prior_weight: float | None = None) -> np.ndarray:
        votes, weights = self.votes(texts)
        return pool(votes, weights, self.prior, self.prior_weight if prior_weight is None else prior_weight)

    def save(self, model_dir: str) -> None:
        np.savez(
            os.path.join(model_dir, "model.npz"),
            vocabulary=np.asarray(self.vocabulary, dtype=str),
            class_given_word=self.class_given_word.astype(np.float32),
            weight=self.weight.astype(np.float32),
        )
        header = {
            "format": FORMAT,
            "classes": self.classes,
            "prior": self.prior.tolist(),
            "prior_weight": self.prior_weight,
            **self.info,
        }
        with open(os.path.join(model_dir, "model.json"), "w", encoding="utf-8") as f:
            json.dump(header, f, indent=1, sort_keys=True)

    @classmethod
    def load(cls, model_dir: str) -> NewsClassifier:
        with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
            header = json.load(f)
        if header.get("format") != FORMAT:
            raise ValueError(f"{model_dir}/model.json is format {header.get('format')!r}, expected {FORMAT!r}")
        with np.load(os.path.join(model_dir, "model.npz"), allow_pickle=False) as arrays:
            vocabulary = arrays["vocabulary"].tolist()
            class_given_word, weight = arrays["class_given_word"], arrays["weight"]
        info = {k: v for k, v in header.items() if k not in ("format", "classes", "prior", "prior_weight")}
        return cls(
            header["classes"], vocabulary, class_given_word, weight, header["prior"], header["prior_weight"], info
        )


def pool(votes: np.ndarray, weights: np.ndarray, prior: np.ndarray, prior_weight: float) -> np.ndarray:
    """The linear opinion pool, row by row: (votes + prior_weight / classes) / (weights + prior_weight).

    The "not sure" vote is uniform, so its weight moves every margin and never the predicted class; a text with no
    known word gets the class prior.
    """
    uniform = prior_weight / len(prior)
    probs = (votes + uniform) / (weights + prior_weight)[:, None]
    unknown = weights == 0
    probs[unknown] = prior
    return probs


def top_k(probs: np.ndarray, classes: list[str], k: int) -> dict:
    """BlazingText's answer for one record: the k most probable labels, most probable first (ties: class order)."""
    order = sorted(range(len(classes)), key=lambda i: (-probs[i], i))[: max(1, min(k, len(classes)))]
    return {"label": [f"{LABEL_PREFIX}{classes[i]}" for i in order], "prob": [round(float(probs[i]), 6) for i in order]}


# -- the inference toolkit's handlers ---------------------------------------------------------------------------------
def model_fn(model_dir: str) -> NewsClassifier:
    return NewsClassifier.load(model_dir)


def input_fn(body: bytes | str, content_type: str) -> list[dict]:
    """Records `{"source": str, "k": int}`; a bad record is a ValueError naming its line (JSON Lines) or position."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    kind = content_type.split(";")[0].strip().lower()
    default_k = 1
    if kind == "application/jsonlines":
        items = [(f"line {n}", line) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]
        parsed = []
        for where, line in items:
            try:
                parsed.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from None
    elif kind == "application/json":
        doc = json.loads(text)
        if isinstance(doc, dict) and "instances" in doc:
            default_k = int((doc.get("configuration") or {}).get("k", 1))
            doc = doc["instances"]
        doc = doc if isinstance(doc, list) else [doc]
        parsed = [(f"instance {n}", item) for n, item in enumerate(doc, start=1)]
    else:
        raise ValueError(f"content type {content_type!r} is not application/jsonlines or application/json")
    records = []
    for where, item in parsed:
        if not isinstance(item, dict) or not isinstance(item.get("source"), str):
            raise ValueError(f'{where}: needs an object with a string "source", found {str(item)[:80]!r}')
        k = item.get("k", default_k)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f'{where}: "k" must be a positive integer, found {k!r}')
        records.append({"source": item["source"], "k": k})
    return records


def predict_fn(records: list[dict], model: NewsClassifier) -> list[dict]:
    probs = model.predict_proba([r["source"] for r in records])
    return [top_k(p, model.classes, r["k"]) for p, r in zip(probs, records, strict=True)]


def output_fn(prediction: list[dict], accept: str) -> str:
    kind = accept.split(";")[0].strip().lower()
    if kind == "application/jsonlines":
        return "".join(json.dumps(p) + "\n" for p in prediction)
    if kind == "application/json":
        return json.dumps(prediction)
    raise ValueError(f"accept type {accept!r} is not application/jsonlines or application/json")
