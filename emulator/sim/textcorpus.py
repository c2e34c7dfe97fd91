"""Text corpora with known answers for text-classification labeling: a real labeled file, or synthetic news headlines.

- `read_corpus(path)` reads a real corpus, one `text<TAB>class` per line (UTF-8); a bad line is a ValueError naming
  its line number.
- `generate_headlines(n, seed)` makes headlines in the shape of the UCI News Aggregator data the seed samples from
  (its four classes b / e / t / m at UCI's shares, cleaned as the seed's notebook cleans them: no punctuation).
  Headlines are built from stories (a class's entities and what happens to them) over a vocabulary the classes
  share: common news words, entities that belong to two classes (Apple is business and technology), a long tail of
  rare names a model sees too seldom to learn, and ambiguous headlines whose words come from two classes.
- `auto_label_figures(...)` trains the BlazingText-style learner (emulator/sim/fasttext.py) on the first labels and
  measures what the seed's workflow would auto-label (top-1 minus top-2 probability > 0.5): the figures the
  generator is tuned against come from training, never from constants.
- `seed_text(...)` writes a corpus to S3 as the seed's notebook does (an input manifest with the first share of
  lines already human-labeled, and the label-category file) and registers every text's true class with the
  emulator (`POST /_emulator/text-truth`), so its simulated workers can answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib import error as urlerror
from urllib import request as urlrequest

import numpy as np
from botocore.exceptions import ClientError

# UCI News Aggregator class shares (newsCorpora.csv: e 152,469, b 115,967, t 108,344, m 45,639 of 422,419).
CLASS_SHARES: dict[str, float] = {"e": 0.361, "b": 0.275, "t": 0.256, "m": 0.108}
CLASS_NAMES: dict[str, str] = {
    "b": "business",
    "e": "entertainment",
    "t": "science and technology",
    "m": "health",
}
# The seed's BlazingText hyperparameters (GROUND_TRUTH.md, "Training job").
SEED_HYPERPARAMETERS: dict[str, str] = {
    "mode": "supervised",
    "epochs": "20",
    "learning_rate": "0.05",
    "min_count": "5",
    "min_epochs": "1",
    "early_stopping": "True",
    "patience": "5",
    "vector_dim": "20",
    "word_ngrams": "2",
}
AUTO_LABEL_MARGIN = 0.5  # the seed auto-labels when top-1 minus top-2 probability is > 0.50
DEFAULT_LABEL_ATTRIBUTE = "category"  # the seed's notebook: "category" / "category-metadata"
TRUTH_ROUTE = "/_emulator/text-truth"
TRUTH_CHUNK = 2000

LabeledText = tuple[str, str]  # (text, class name)


# ----------------------------------------------------------------------------------------------------------------
# A real corpus file
# ----------------------------------------------------------------------------------------------------------------
def parse_corpus(lines: Iterable[str], source: str = "corpus") -> list[LabeledText]:
    """`text<TAB>class` lines -> pairs. Empty lines are skipped; anything else malformed is a ValueError naming
    the line number (from 1)."""
    pairs: list[LabeledText] = []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(
                f"{source} line {number}: expected 'text<TAB>class', found {len(parts) - 1} tab(s): {line[:80]!r}"
            )
        text, class_name = parts[0].strip(), parts[1].strip()
        if not text:
            raise ValueError(f"{source} line {number}: the text is empty")
        if not class_name:
            raise ValueError(f"{source} line {number}: the class is empty")
        if any(ch.isspace() for ch in class_name):
            raise ValueError(f"{source} line {number}: the class {class_name!r} contains whitespace")
        pairs.append((text, class_name))
    return pairs


def read_corpus(path: str | Path) -> list[LabeledText]:
    """Read a labeled corpus file, one `text<TAB>class` per line, UTF-8; errors name the file and line number."""
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    decoded: list[str] = []
    for number, line in enumerate(lines, start=1):
        try:
            decoded.append(line.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} line {number}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    pairs = parse_corpus(decoded, source=str(path))
    if not pairs:
        raise ValueError(f"{path}: no labeled lines")
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# Synthetic UCI-News-shaped headlines
# ----------------------------------------------------------------------------------------------------------------
# fmt: off
# Per class: who or what a story is about, what happens, and what it happens to. Several entities belong to two
# classes, as on the real news wire. Spelled as the seed's notebook leaves titles: punctuation removed.
ENTITIES: dict[str, list[str]] = {
    "b": [
        "Fed", "Yellen", "Wall Street", "Dow", "SP 500", "Nasdaq", "ECB", "Draghi", "euro", "dollar", "oil", "gold",
        "Treasury yields", "GM", "Ford", "Toyota", "Citigroup", "JPMorgan", "Bank of America", "Goldman Sachs",
        "BNP Paribas", "Alibaba", "Walmart", "McDonalds", "Burger King", "Herbalife", "Argentina", "Alstom", "Siemens",
        "GE", "Boeing", "Airbus", "AstraZeneca", "Pfizer", "Comcast", "Time Warner Cable", "ATT", "DirecTV", "Tesla",
        "Apple", "Google", "Amazon", "Facebook", "Microsoft", "Netflix", "Twitter", "Samsung", "Sony", "China",
        "Ukraine",
    ],
    "e": [
        "Kim Kardashian", "Kanye West", "Justin Bieber", "Miley Cyrus", "Beyonce", "Jay Z", "Lady Gaga", "Taylor Swift",
        "Selena Gomez", "Angelina Jolie", "Brad Pitt", "George Clooney", "Jennifer Lopez", "Lindsay Lohan",
        "Paul Walker", "Robin Thicke", "Shia LaBeouf", "Gwyneth Paltrow", "Chris Martin", "Jennifer Lawrence",
        "Emma Stone", "Leonardo DiCaprio", "Game of Thrones", "Mad Men", "The Walking Dead", "American Idol",
        "The Voice", "Dancing With the Stars", "Star Wars", "XMen", "Transformers", "Godzilla", "Captain America",
        "SpiderMan", "Frozen", "Oscars", "Grammys", "Cannes", "Coachella", "Eurovision", "Disney", "Netflix", "Sony",
        "Michael Jackson", "Rolling Stones", "One Direction", "Rihanna", "Chris Brown", "Kristen Stewart", "Zac Efron",
    ],
    "t": [
        "Apple", "Google", "Microsoft", "Samsung", "Facebook", "Twitter", "Amazon", "iPhone 6", "iPad", "Galaxy S5",
        "Android", "Windows XP", "Xbox One", "PlayStation 4", "Nintendo", "Oculus", "Google Glass", "NASA", "Mars",
        "Curiosity rover", "SpaceX", "comet", "asteroid", "Moon", "dinosaur", "climate change", "Heartbleed",
        "net neutrality", "FCC", "Tesla", "GM", "Comcast", "Netflix", "Yahoo", "Sony", "BlackBerry", "Nokia",
        "Titanfall", "Bitcoin", "Uber", "WhatsApp", "Snapchat", "Intel", "IBM", "HTC", "Motorola",
    ],
    "m": [
        "Ebola", "MERS", "FDA", "CDC", "WHO", "cancer", "breast cancer", "Alzheimers", "dementia", "obesity",
        "diabetes", "heart disease", "HIV", "measles", "polio", "autism", "flu", "bird flu", "vaccine", "ecigarettes",
        "Obamacare", "Medicaid", "Medicare", "Pfizer", "AstraZeneca", "Gilead", "Sovaldi", "hepatitis C", "chikungunya",
        "salmonella", "stroke", "depression", "smoking", "alcohol", "sugar", "marijuana", "painkillers", "antibiotics",
        "cholesterol", "West Nile",
    ],
}
PREDICATES: dict[str, list[str]] = {
    "b": [
        "shares fall", "shares rise", "stocks rally", "stocks slip", "profit beats estimates", "profit falls",
        "quarterly earnings", "revenue rises", "sales slump", "cuts jobs", "agrees to buy", "takeover bid",
        "merger talks", "deal", "IPO", "raises forecast", "cuts forecast", "rate hike", "inflation", "growth slows",
        "jobless claims", "trade deficit", "to pay fine", "settlement", "CEO steps down", "dividend", "prices climb",
        "bond sale", "misses estimates", "stake", "bid", "debt",
    ],
    "e": [
        "new album", "new video", "box office", "trailer", "premiere", "wedding", "engaged", "divorce", "split", "baby",
        "pregnant", "red carpet", "tour", "season finale", "episode", "sequel", "cast", "concert", "music video",
        "single", "fans", "feud", "dating", "rumors", "dies at", "tribute", "performance", "award", "show", "movie",
        "reunion", "interview", "photos", "dress",
    ],
    "t": [
        "unveils", "launches", "update", "new app", "smartphone", "tablet", "security flaw", "bug", "hackers", "patent",
        "satellite", "launch", "species", "discovery", "researchers", "scientists", "software", "users", "privacy",
        "release date", "leaked", "features", "camera", "battery", "wearable", "smartwatch", "driverless car", "space",
        "telescope", "planet", "solar", "video game", "console", "online", "internet", "mobile", "cloud",
    ],
    "m": [
        "study finds", "study", "risk", "outbreak", "cases", "patients", "linked to", "drug approved", "approves",
        "deaths", "health officials", "treatment", "doctors", "hospital", "virus", "infection", "screening", "symptoms",
        "trial", "researchers", "children", "women", "diet", "exercise", "sleep", "lower risk", "higher risk",
        "warning", "spread", "confirmed", "vaccine", "health", "kills",
    ],
}
OBJECTS: dict[str, list[str]] = {
    "b": [
        "investors", "markets", "economy", "billion deal", "first quarter", "second quarter", "bonds", "stimulus",
        "taper", "sanctions", "shareholders", "analysts", "jobs report", "consumer spending", "housing market",
        "mortgage rates", "profit", "revenue", "sales", "earnings", "stocks", "banks",
    ],
    "e": [
        "fans", "Hollywood", "Twitter", "Instagram", "the movie", "the show", "new season", "red carpet", "wedding",
        "girlfriend", "boyfriend", "family", "music", "TV", "film festival", "album", "stage",
    ],
    "t": [
        "users", "iOS", "Android", "the web", "smartphones", "data", "the galaxy", "the planet", "scientists",
        "space station", "apps", "devices", "Internet", "gamers", "tech", "robots", "the sun",
    ],
    "m": [
        "patients", "children", "doctors", "hospitals", "women", "teens", "the brain", "health", "risk", "drugs",
        "the virus", "infections", "the heart", "diet", "weight", "disease", "cancer",
    ],
}
GENERIC_PREDICATES = [
    "says", "plans", "faces", "wins", "warns", "sues", "hits", "gets", "wants", "to", "could", "may", "is", "new",
    "set to", "talks", "news", "record", "back", "big", "top", "more",
]
LEADS = [
    "UPDATE 2", "Watch", "Report", "Why", "How", "Exclusive", "VIDEO", "What", "New", "UPDATE 1", "Analysis", "US",
    "UK", "Breaking", "Opinion",
]
TAILS = [
    "report says", "in 2014", "this week", "video", "sources say", "officials say", "again", "for now", "UPDATE",
    "says report", "photos", "today", "in US", "in UK", "this year", "first time", "by 2015",
]
CONNECTORS = [
    "after", "amid", "over", "as", "in", "for", "with", "on", "to", "at", "by", "from", "and", "of",
]
SHARED_ENTITIES = [
    "Obama", "China", "Russia", "Europe", "UK", "Japan", "India", "California", "New York", "Texas", "Canada",
    "Australia", "Germany", "France", "London",
]
# Rare names: syllables and class-flavoured suffixes, a tail far longer than any labeled sample covers.
_SYLLABLES = [
    "ka", "lo", "ver", "mi", "tan", "so", "rex", "dal", "ni", "mor", "qui", "zen", "bel", "tor", "ash", "vi", "lum",
    "cor", "pra", "dex", "fen", "gal", "hol", "ix", "jun", "ket", "nov", "pel", "ron", "sy",
]
_RARE_SUFFIXES: dict[str, list[str]] = {
    "b": ["Holdings", "Capital", "Group", "", "", "", ""],
    "e": ["", "", "Jr", "", "", "", ""],
    "t": ["Labs", "Tech", "Systems", "", "", "", ""],
    "m": ["Pharma", "virus", "syndrome", "", "", "", ""],
}
# fmt: on


@dataclass(frozen=True)
class HeadlineStyle:
    """How hard the headlines are: the knobs the generator is tuned with (see emulator/README.md, Text corpus).

    A headline is one of three kinds:
    - *typical* (the rest): its class's entity, predicate and maybe object ("Fed raises forecast amid taper");
    - *crossover* (`ambiguous`): an entity of one class and a predicate of another, labeled with either
      ("Apple shares fall" is business, "Netflix season finale" entertainment);
    - *vague* (`vague`): nothing class-specific but perhaps the object ("Obama says new report").
    And within them:
    - `rare`: share of entities that are rare names from the long tail (seen too seldom to be learned);
    - `generic_predicate`: share of typical headlines whose verb every class uses (says, plans, faces, ...);
    - `head`, `zipf`: a class's entities, predicates and objects are drawn from a Zipf law of exponent `zipf` with
      probability `head`, else uniformly: a few frequent words (learned from a few hundred labels) and a long tail of
      words that only cross BlazingText's `min_count` as labels accumulate;
    - `filler`: expected number of shared leads and tails around the story (UPDATE 2 ..., ... report says);
    - `title_case`: share of headlines in Title Case (fastText sees "Says" and "says" as two words).
    """

    ambiguous: float = 0.34
    vague: float = 0.36
    rare: float = 0.3
    generic_predicate: float = 0.15
    head: float = 0.75
    zipf: float = 2.0
    filler: float = 0.3
    title_case: float = 0.1


DEFAULT_STYLE = HeadlineStyle()
# Named styles for `seed-text --style`: "hard" is the default above; "clear" has 4% crossovers (the headlines either
# class may claim, which a confident model gets wrong half the time), 16% vague headlines and a fifth rare names,
# closer to how separable real news headlines are.
STYLES = {"hard": DEFAULT_STYLE, "clear": HeadlineStyle(ambiguous=0.04, vague=0.16, rare=0.2)}


@functools.lru_cache(maxsize=64)
def _zipf_cdf(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return np.cumsum(weights / weights.sum())


def _zipf_pick(rng: np.random.Generator, items: Sequence[str], style: HeadlineStyle) -> str:
    """A few names make most of the news (the Zipf head), the rest turn up now and then (the uniform tail)."""
    if rng.random() >= style.head:
        return _pick(rng, items)
    cdf = _zipf_cdf(len(items), style.zipf)
    return items[min(int(np.searchsorted(cdf, rng.random())), len(items) - 1)]


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _rare_name(rng: np.random.Generator, class_name: str | None) -> str:
    """A made-up name; with a class, sometimes with a suffix that hints at it (Holdings, Labs, Pharma)."""
    word = "".join(_pick(rng, _SYLLABLES) for _ in range(int(rng.integers(2, 4))))
    suffix = _pick(rng, _RARE_SUFFIXES[class_name]) if class_name else ""
    name = word.capitalize()
    if class_name == "e" and rng.random() < 0.7:  # people: first and last name
        name = f"{(_pick(rng, _SYLLABLES) + _pick(rng, _SYLLABLES)).capitalize()} {name}"
    return f"{name} {suffix}".strip()


def _clean(title: str) -> str:
    """The seed's notebook cleaning: quotes and every non-word, non-space character removed."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", "", title.replace('"', ""))).strip()


def _other_class(rng: np.random.Generator, class_name: str) -> str:
    others = [c for c in CLASS_SHARES if c != class_name]
    draw, total = rng.random() * sum(CLASS_SHARES[c] for c in others), 0.0
    for other in others:
        total += CLASS_SHARES[other]
        if draw < total:
            return other
    return others[-1]


def _entity(rng: np.random.Generator, class_name: str, style: HeadlineStyle) -> str:
    if rng.random() < style.rare:
        return _rare_name(rng, class_name)
    return _zipf_pick(rng, ENTITIES[class_name], style)


def generate_headline(rng: np.random.Generator, class_name: str, style: HeadlineStyle = DEFAULT_STYLE) -> str:
    """One headline of `class_name`: [lead] entity predicate [connector object] [tail]; see `HeadlineStyle`."""
    kind = rng.random()
    if kind < style.ambiguous:  # crossover: one part of each class, either way round
        other = _other_class(rng, class_name)
        entity_class, predicate_class = (class_name, other) if rng.random() < 0.5 else (other, class_name)
        entity = _zipf_pick(rng, ENTITIES[entity_class], style)  # a well-known name: both sides speak
        predicate = _zipf_pick(rng, PREDICATES[predicate_class], style)
        object_class = predicate_class  # a strong name against what happens to it
    elif kind < style.ambiguous + style.vague:  # vague: a shared or unknown subject doing something generic
        entity = _pick(rng, SHARED_ENTITIES) if rng.random() < 0.5 else _rare_name(rng, None)
        predicate = _pick(rng, GENERIC_PREDICATES)
        object_class = class_name
    else:
        entity = _entity(rng, class_name, style)
        if rng.random() < style.generic_predicate:
            predicate = _pick(rng, GENERIC_PREDICATES)
        else:
            predicate = _zipf_pick(rng, PREDICATES[class_name], style)
        object_class = class_name
    parts = [entity, predicate]
    if rng.random() < 0.6:
        parts += [_pick(rng, CONNECTORS), _zipf_pick(rng, OBJECTS[object_class], style)]
    if rng.random() < style.filler / 2:
        parts.insert(0, _pick(rng, LEADS))
    if rng.random() < style.filler / 2:
        parts.append(_pick(rng, TAILS))
    title = " ".join(parts)
    if rng.random() < style.title_case:
        title = " ".join(w[:1].upper() + w[1:] for w in title.split())
    else:
        title = title[:1].upper() + title[1:]
    return _clean(title)


def headline_owner(text: str) -> str:
    """The one class a synthetic headline may carry, whatever the seed: a hash of the text picks it.

    Crossover and vague headlines can come out of any of several classes, and one emulator serves many corpora
    (seeds, sizes), so without an owner the same text could be registered with two classes. The generator only keeps
    a headline drawn for the class that owns it; the hash knows nothing of the words, so this takes nothing from how
    the headlines read.
    """
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return _OWNER_ORDER[int.from_bytes(digest, "big") % len(_OWNER_ORDER)]


_OWNER_ORDER = sorted(CLASS_SHARES)


def generate_headlines(n: int, seed: int = 0, style: HeadlineStyle = DEFAULT_STYLE) -> list[LabeledText]:
    """`n` (headline, class) pairs with UCI's class shares, in random order; a pure function of (n, seed, style),
    and the first k of n are `generate_headlines(k, seed, style)`.

    Headlines are distinct, and each is owned by its class (`headline_owner`), so any two corpora agree on every text
    they share and the emulator can register them all.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng([seed, 0x7E47])
    classes = list(CLASS_SHARES)
    cdf = np.cumsum([CLASS_SHARES[c] for c in classes])
    cdf /= cdf[-1]
    seen: set[str] = set()
    pairs: list[LabeledText] = []
    for _ in range(n):
        class_name = classes[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(classes) - 1)]
        while True:
            text = generate_headline(rng, class_name, style)
            if text and text not in seen and headline_owner(text) == class_name:
                break
        seen.add(text)
        pairs.append((text, class_name))
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# What a BlazingText-style model makes of a corpus (the figures the generator is tuned against)
# ----------------------------------------------------------------------------------------------------------------
def auto_label_figures(
    corpus: Sequence[LabeledText],
    labels: int,
    validation: int = 1000,
    hyperparameters: dict[str, str] | None = None,
    seed: int = 0,
) -> dict:
    """Train on `labels` labeled texts, as one round of the seed's workflow does, and auto-label the rest.

    The first `validation` texts are the validation channel (early stopping), the next `labels` the train
    channel, and all others are "unlabeled": they are auto-labeled when the model's top-1 minus top-2 probability is
    > AUTO_LABEL_MARGIN. Returns the accuracy on the unlabeled texts, the auto-labeled share and its accuracy, and
    the training's validation accuracy, all measured.
    """
    from emulator.sim.fasttext import FastTextClassifier, FastTextParams

    if validation + labels >= len(corpus):
        raise ValueError(f"{validation} validation + {labels} labels leave nothing unlabeled in {len(corpus)} texts")
    params = FastTextParams.from_hyperparameters({**(hyperparameters or SEED_HYPERPARAMETERS), "seed": str(seed)})
    val, train, rest = corpus[:validation], corpus[validation : validation + labels], corpus[validation + labels :]
    model = FastTextClassifier.train(
        [t for t, _ in train], [c for _, c in train], params, validation=([t for t, _ in val], [c for _, c in val])
    )
    probs = model.predict_proba([t for t, _ in rest])
    order = np.argsort(-probs, axis=1)
    top1 = probs[np.arange(len(rest)), order[:, 0]]
    top2 = probs[np.arange(len(rest)), order[:, 1]] if probs.shape[1] > 1 else np.zeros(len(rest))
    predicted = np.asarray(model.labels)[order[:, 0]]
    truth = np.asarray([c for _, c in rest])
    correct = predicted == truth
    auto = (top1 - top2) > AUTO_LABEL_MARGIN
    return {
        "labels": labels,
        "unlabeled": len(rest),
        "accuracy": round(float(correct.mean()), 4),
        "auto_labeled_share": round(float(auto.mean()), 4),
        "auto_label_accuracy": round(float(correct[auto].mean()), 4) if auto.any() else None,
        "validation_accuracy": round(float(max(v for _, _, v in model.history)), 4),
        "best_epoch": model.best_epoch,
        "epochs_run": len(model.history),
    }


# ----------------------------------------------------------------------------------------------------------------
# seed-text: the corpus on S3 as the seed's notebook leaves it, and its answers registered with the emulator
# ----------------------------------------------------------------------------------------------------------------
def manifest_lines(
    corpus: Sequence[LabeledText],
    labeled: int,
    classes: Sequence[str],
    label_attribute: str = DEFAULT_LABEL_ATTRIBUTE,
    job_name: str = "labeling-job/seed-text",
    creation_date: str | None = None,
) -> list[str]:
    """Input manifest lines: `{"source": text}`, the first `labeled` ones already human-labeled in Ground Truth's
    text-classification output format (the class index into `classes`, and its metadata)."""
    creation_date = creation_date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    index = {c: i for i, c in enumerate(classes)}
    lines = []
    for number, (text, class_name) in enumerate(corpus):
        record: dict = {"source": text}
        if number < labeled:
            record[label_attribute] = index[class_name]
            record[f"{label_attribute}-metadata"] = {
                "class-name": class_name,
                "confidence": 1.0,  # the corpus's own label, as the seed's notebook writes it
                "human-annotated": "yes",
                "job-name": job_name,
                "type": "groundtruth/text-classification",
                "creation-date": creation_date,
            }
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def label_categories(classes: Sequence[str]) -> dict:
    """The Ground Truth label-category configuration file (`LabelCategoryConfigS3Uri`)."""
    return {"document-version": "2018-11-28", "labels": [{"label": c} for c in classes]}


def register_truth(endpoint_url: str, corpus: Sequence[LabeledText], chunk: int = TRUTH_CHUNK) -> int:
    """POST every (text, class) to the emulator's text-truth route, in chunks; returns the texts it then knows.

    A contradiction (a text the emulator knows with another class) is a ValueError carrying the emulator's reason.
    """
    if not endpoint_url.startswith(("http://", "https://")):
        raise ValueError(f"endpoint URL {endpoint_url!r} must be http:// or https://")
    url = endpoint_url.rstrip("/") + TRUTH_ROUTE
    known = 0
    for start in range(0, len(corpus), chunk):
        body = json.dumps({"pairs": [list(p) for p in corpus[start : start + chunk]]}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        req = urlrequest.Request(url, data=body, method="POST", headers=headers)  # noqa: S310 - http(s), checked
        try:
            with urlrequest.urlopen(req, timeout=60) as response:  # noqa: S310 - http(s), checked above
                known = json.loads(response.read())["texts"]
        except urlerror.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]
            raise ValueError(f"the emulator at {endpoint_url} refused the text truth: {detail}") from None
    return known


def seed_text(
    endpoint_url: str,
    bucket: str,
    prefix: str,
    corpus: str | Path | None = None,
    articles: int | None = 10_000,
    labeled_share: float = 0.2,
    seed: int = 0,
    label_attribute: str = DEFAULT_LABEL_ATTRIBUTE,
    style: HeadlineStyle = DEFAULT_STYLE,
) -> dict:
    """Write `s3://bucket/prefix/input.manifest` and `label_categories.json` and register every text's class.

    Texts come from `corpus` (a `text<TAB>class` file; at most `articles` lines of it, in file order) or, without
    it, from `generate_headlines(articles, seed, style)`. The first `int(len * labeled_share)` manifest lines are
    already human-labeled, as the seed's notebook does; classes are indexed in first-seen order. The bucket is
    created if missing. Returns a summary of what was written.
    """
    started = time.monotonic()
    if not 0.0 <= labeled_share <= 1.0:
        raise ValueError(f"labeled_share must be within [0, 1], got {labeled_share}")
    if articles is not None and articles < 1:
        raise ValueError(f"articles must be at least 1, got {articles}")
    if not label_attribute or label_attribute.endswith("-metadata"):
        raise ValueError(f"label attribute name {label_attribute!r} is not a valid Ground Truth attribute name")
    if corpus is not None:
        pairs = read_corpus(corpus)
        if articles is not None:
            pairs = pairs[:articles]
    else:
        pairs = generate_headlines(10_000 if articles is None else articles, seed, style)
    first_class: dict[str, str] = {}
    for text, class_name in pairs:
        if first_class.setdefault(text, class_name) != class_name:
            raise ValueError(f"text {text!r} appears with class {first_class[text]!r} and class {class_name!r}")
    classes = list(dict.fromkeys(c for _, c in pairs))
    labeled = int(round(len(pairs) * labeled_share, 6))

    registered = register_truth(endpoint_url, pairs)

    from emulator.sim.openimages import s3_client

    s3 = s3_client(endpoint_url)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
    base = prefix.strip("/")
    manifest_key = f"{base}/input.manifest" if base else "input.manifest"
    categories_key = f"{base}/label_categories.json" if base else "label_categories.json"
    manifest = ("\n".join(manifest_lines(pairs, labeled, classes, label_attribute)) + "\n").encode("utf-8")
    s3.put_object(Bucket=bucket, Key=manifest_key, Body=manifest, ContentType="application/jsonlines")
    categories = json.dumps(label_categories(classes), indent=4).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=categories_key, Body=categories, ContentType="application/json")
    return {
        "manifest": f"s3://{bucket}/{manifest_key}",
        "label_categories": f"s3://{bucket}/{categories_key}",
        "articles": len(pairs),
        "labeled": labeled,
        "classes": {c: sum(1 for _, k in pairs if k == c) for c in classes},
        "label_attribute": label_attribute,
        "texts_known_to_emulator": registered,
        "seconds": round(time.monotonic() - started, 2),
    }
