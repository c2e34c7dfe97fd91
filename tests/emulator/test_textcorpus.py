"""Text corpora with known answers: the corpus-file reader, the UCI-News-shaped generator (its shape, and what a
BlazingText-style model trained on it really achieves), and `seed-text` through the endpoint."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from emulator.__main__ import main as emulator_main
from emulator.sim.textcorpus import (
    CLASS_SHARES,
    ENTITIES,
    PREDICATES,
    auto_label_figures,
    generate_headlines,
    headline_owner,
    read_corpus,
    seed_text,
)


# -- the corpus file -----------------------------------------------------------------------------------------------
def test_corpus_reader_reads_text_tab_class_lines(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("Fed raises rates\tb\n\nÉbola vaccine trial starts \t m\r\nNew Godzilla trailer\te\n", "utf-8")
    assert read_corpus(path) == [
        ("Fed raises rates", "b"),
        ("Ébola vaccine trial starts", "m"),
        ("New Godzilla trailer", "e"),
    ]


@pytest.mark.parametrize(
    ("content", "line", "says"),
    [
        (b"Fed raises rates\tb\nno tab at all\n", 2, "expected 'text<TAB>class'"),
        (b"a\tb\nc\td\ntoo\tmany\ttabs\n", 3, "found 2 tab"),
        (b"Fed raises rates\tb\n\t e\n", 2, "the text is empty"),
        (b"Fed raises rates\t\n", 1, "the class is empty"),
        (b"Fed raises rates\tb\nApple unveils\tsci tech\n", 2, "contains whitespace"),
        (b"Fed raises rates\tb\nCaf\xe9 opens\tb\n", 2, "not UTF-8"),
    ],
)
def test_corpus_reader_errors_name_the_line(tmp_path, content, line, says):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"line {line}: .*{says}") as err:
        read_corpus(path)
    assert str(path) in str(err.value)


# -- the generator -------------------------------------------------------------------------------------------------
def test_generator_has_the_uci_shape():
    corpus = generate_headlines(10_000, seed=0)
    counts = Counter(c for _, c in corpus)
    shares = {c: counts[c] / len(corpus) for c in counts}
    print(f"class shares {shares}")
    assert set(counts) == {"b", "e", "t", "m"}
    for class_name, uci_share in CLASS_SHARES.items():
        assert shares[class_name] == pytest.approx(uci_share, abs=0.02)
    assert counts["e"] > counts["b"] > counts["t"] > counts["m"]  # imbalanced like UCI, health the rarest

    texts = [t for t, _ in corpus]
    assert len(set(texts)) == len(texts)  # one text, one class
    assert all(t and "\t" not in t and "\n" not in t for t in texts)
    assert all(not any(ch in t for ch in "'\",.!?:;-&") for t in texts)  # the notebook's cleaning: no punctuation

    words_by_class: dict[str, set[str]] = {}
    for text, class_name in corpus:
        words_by_class.setdefault(class_name, set()).update(text.lower().split())
    shared = set.intersection(*words_by_class.values())
    print(f"{len(shared)} words appear in all four classes, e.g. {sorted(shared)[:12]}")
    assert len(shared) >= 50  # a shared vocabulary, not four disjoint ones

    def mixes_classes(text: str) -> bool:  # a well-known entity of one class with a predicate of another
        for entity_class, entities in ENTITIES.items():
            for entity in entities:
                if text.lower().startswith(entity.lower() + " "):
                    rest = text[len(entity) + 1 :].lower()
                    return any(
                        rest.startswith(p.lower())
                        for other, predicates in PREDICATES.items()
                        if other != entity_class and not set(predicates) & set(PREDICATES[entity_class])
                        for p in predicates
                    )
        return False

    ambiguous = sum(mixes_classes(t) for t in texts) / len(texts)
    print(f"{ambiguous:.1%} of headlines open with one class's entity and another class's predicate")
    assert ambiguous > 0.05


def test_generator_is_deterministic_prefix_stable_and_owned():
    corpus = generate_headlines(2_000, seed=5)
    assert generate_headlines(2_000, seed=5) == corpus
    assert generate_headlines(500, seed=5) == corpus[:500]
    other = generate_headlines(2_000, seed=6)
    assert other != corpus
    # Any two corpora agree on the texts they share: each text belongs to one class whatever the seed.
    assert all(headline_owner(t) == c for t, c in corpus + other)
    shared = {t: c for t, c in corpus}.items() & {t: c for t, c in other}.items()
    assert {t for t, _ in corpus} & {t for t, _ in other} == {t for t, _ in shared}


def test_learning_curve_rises_and_2000_labels_auto_label_about_half():
    """Real training with the seed's BlazingText hyperparameters: validation = the first 1,000 headlines, train = the
    next N, auto-labeled = top-1 minus top-2 probability > 0.5 on all the others (the seed's rule)."""
    corpus = generate_headlines(10_000, seed=0)
    started = time.perf_counter()
    figures = {n: auto_label_figures(corpus, n, validation=1000, seed=0) for n in (500, 1000, 2000, 4000)}
    for n, row in figures.items():
        print(
            f"{n:>5} labels: accuracy {row['accuracy']:.3f} on {row['unlabeled']} unlabeled, auto-labeled "
            f"{row['auto_labeled_share']:.1%} (correct {row['auto_label_accuracy']}), best epoch "
            f"{row['best_epoch']} of {row['epochs_run']}"
        )
    print(f"four trainings in {time.perf_counter() - started:.1f} s")
    accuracy = [figures[n]["accuracy"] for n in (500, 1000, 2000, 4000)]
    assert accuracy == sorted(accuracy) and len(set(accuracy)) == 4  # the learning curve rises
    at_2000 = figures[2000]
    assert 0.35 <= at_2000["auto_labeled_share"] <= 0.70  # the seed ended 48% auto-labeled
    assert at_2000["auto_label_accuracy"] > at_2000["accuracy"] + 0.05  # a confident label is a better label


# -- seed-text through the endpoint --------------------------------------------------------------------------------
def _manifest(s3, bucket: str, prefix: str) -> list[dict]:
    body = s3.get_object(Bucket=bucket, Key=f"{prefix}/input.manifest")["Body"].read().decode("utf-8")
    return [json.loads(line) for line in body.splitlines()]


def test_seed_text_writes_manifest_and_categories_and_registers_truth(emulator, s3):
    summary = seed_text(emulator.url, "text-corpus-tests", "news/small", articles=500, labeled_share=0.2, seed=3)
    corpus = generate_headlines(500, seed=3)
    lines = _manifest(s3, "text-corpus-tests", "news/small")
    categories = json.loads(
        s3.get_object(Bucket="text-corpus-tests", Key="news/small/label_categories.json")["Body"].read()
    )
    classes = list(dict.fromkeys(c for _, c in corpus))
    assert categories == {"document-version": "2018-11-28", "labels": [{"label": c} for c in classes]}
    assert summary["manifest"] == "s3://text-corpus-tests/news/small/input.manifest"
    assert summary["labeled"] == 100 and summary["articles"] == 500

    assert [line["source"] for line in lines] == [t for t, _ in corpus]
    for line, (_, class_name) in zip(lines[:100], corpus[:100], strict=True):
        meta = line["category-metadata"]
        assert line["category"] == classes.index(class_name)
        assert meta["class-name"] == class_name and meta["human-annotated"] == "yes"
        assert meta["type"] == "groundtruth/text-classification"
        assert meta["job-name"] == "labeling-job/seed-text"
        time.strptime(meta["creation-date"].split(".")[0], "%Y-%m-%dT%H:%M:%S")
    assert all(set(line) == {"source"} for line in lines[100:])

    truth = emulator.app.text_truth
    assert all(truth.lookup(t) == c for t, c in corpus)
    assert truth.lookup("a headline nobody seeded") is None


def test_seed_text_cli_on_a_corpus_file_and_a_contradiction(emulator, s3, tmp_path, capsys):
    path = tmp_path / "mine.tsv"
    path.write_text("pytest corpus Alpha launches\tt\npytest corpus Beta album\te\npytest corpus Gamma shares\tb\n")
    args = ["seed-text", "--endpoint-url", emulator.url, "--bucket", "text-corpus-cli", "--prefix", "mine"]
    assert (
        emulator_main([*args, "--corpus", str(path), "--labeled-share", "0.34", "--label-attribute-name", "topic"]) == 0
    )
    lines = _manifest(s3, "text-corpus-cli", "mine")
    assert lines[0] == {
        "source": "pytest corpus Alpha launches",
        "topic": 0,
        "topic-metadata": lines[0]["topic-metadata"],
    }
    assert lines[0]["topic-metadata"]["class-name"] == "t"
    assert lines[1:] == [{"source": "pytest corpus Beta album"}, {"source": "pytest corpus Gamma shares"}]

    contradiction = tmp_path / "contradiction.tsv"
    contradiction.write_text("pytest corpus Delta\tm\npytest corpus Alpha launches\tb\n")
    assert emulator_main([*args[:-1], "contradicted", "--corpus", str(contradiction)]) == 1
    err = capsys.readouterr().err
    assert "pytest corpus Alpha launches" in err and "'t'" in err and "'b'" in err
    listed = s3.list_objects_v2(Bucket="text-corpus-cli", Prefix="contradicted/")
    assert listed.get("KeyCount", 0) == 0  # nothing written when the truth is refused


def test_seed_text_cli_bad_corpus_line_exits_with_its_number(emulator, tmp_path, capsys):
    path = tmp_path / "bad.tsv"
    path.write_text("pytest bad Fed raises rates\tb\npytest bad Kanye tour\te\nthis line has no tab\n")
    args = ["seed-text", "--endpoint-url", emulator.url, "--bucket", "text-corpus-cli", "--prefix", "bad"]
    assert emulator_main([*args, "--corpus", str(path)]) == 1
    assert "line 3" in capsys.readouterr().err


def test_seed_text_cli_10000_headlines_take_under_30_seconds(emulator, s3):
    started = time.perf_counter()
    args = ["seed-text", "--endpoint-url", emulator.url, "--bucket", "text-corpus-cli", "--prefix", "full"]
    assert emulator_main(args) == 0
    seconds = time.perf_counter() - started
    print(f"seed-text of 10,000 headlines: {seconds:.1f} s")
    assert seconds < 30
    lines = _manifest(s3, "text-corpus-cli", "full")
    assert len(lines) == 10_000 and sum("category" in line for line in lines) == 2_000
