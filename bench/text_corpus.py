"""The text corpus and its learner: seed-text's wall time, the fastText learner's speed, and what a BlazingText-style
model trained on the synthetic headlines achieves (learning curve, auto-labeled share), seed by seed.

Usage: python bench/text_corpus.py [--articles 10000] [--seeds 0 1 2 3 4 5]
(about 5 s per seed on 2 cores, plus the seeding)
"""

from __future__ import annotations

import argparse
import itertools
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

LABELS = (500, 1000, 2000, 4000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    args = parser.parse_args()
    if args.articles < max(LABELS) + 2000:
        parser.error(f"--articles must be at least {max(LABELS) + 2000} for the learning curve")

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from emulator.app import build_app
    from emulator.server import EmulatorServer
    from emulator.sim.fasttext import FastTextClassifier, FastTextParams
    from emulator.sim.textcorpus import SEED_HYPERPARAMETERS, auto_label_figures, generate_headlines, seed_text

    server = EmulatorServer("127.0.0.1", 0, build_app(time_scale=1e6))
    server.start()
    try:
        started = time.perf_counter()
        summary = seed_text(server.url, "bench-text", "news", articles=args.articles, seed=args.seeds[0])
        print(f"seed-text, {summary['articles']} headlines: {time.perf_counter() - started:.1f} s (generate, register "
              f"the truth, write manifest + categories)")  # fmt: skip
    finally:
        server.stop()

    started = time.perf_counter()
    corpus = generate_headlines(args.articles, seed=args.seeds[0])
    print(f"generate_headlines({args.articles}): {time.perf_counter() - started:.1f} s")

    texts, labels = [t for t, _ in corpus], [c for _, c in corpus]
    params = FastTextParams.from_hyperparameters({**SEED_HYPERPARAMETERS, "early_stopping": "False"})
    started = time.perf_counter()
    model = FastTextClassifier.train(texts, labels, params)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model.predict_proba(texts)
    print(
        f"learner, {len(texts)} headlines x {params.epochs} epochs (seed's hyperparameters, no early stopping): "
        f"{train_seconds:.1f} s; predict_proba of {len(texts)}: {time.perf_counter() - started:.2f} s; "
        f"model {len(model.to_bytes()) / 1e6:.1f} MB"
    )

    print(
        "\nseed | accuracy on the unlabeled at 500 / 1,000 / 2,000 / 4,000 labels | auto-labeled share (its accuracy)"
    )
    shares = []
    for seed in args.seeds:
        corpus = generate_headlines(args.articles, seed=seed)
        rows = {n: auto_label_figures(corpus, n, validation=1000, seed=seed) for n in LABELS}
        shares.append(rows[2000]["auto_labeled_share"])
        curve = " / ".join(f"{rows[n]['accuracy']:.3f}" for n in LABELS)
        auto = " / ".join(f"{rows[n]['auto_labeled_share']:.1%} ({rows[n]['auto_label_accuracy']})" for n in LABELS)
        rises = all(rows[a]["accuracy"] < rows[b]["accuracy"] for a, b in itertools.pairwise(LABELS))
        print(f"{seed:>4} | {curve} ({'rises' if rises else 'DOES NOT RISE'}) | {auto}")
    if len(shares) > 1:
        print(
            f"auto-labeled share at 2,000 labels: mean {statistics.mean(shares):.1%}, "
            f"SD {statistics.stdev(shares):.1%}, range {min(shares):.1%} to {max(shares):.1%}"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
