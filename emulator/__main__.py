"""`python -m emulator serve|seed-openimages|seed-text ...` — see emulator/README.md."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from emulator.app import build_app
    from emulator.faults import FaultConfig
    from emulator.server import EmulatorServer

    faults = FaultConfig(
        latency_ms=args.latency_ms,
        throttle_fraction=args.throttle_fraction,
        error_fraction=args.error_fraction,
        only=[s for s in args.fault_only.split(",") if s],
    )
    server = EmulatorServer(args.host, args.port, build_app(faults, time_scale=args.time_scale))
    # The port line is machine-read by scripts/demo.py when --port 0 asks for a free one.
    print(f"emulator listening on {server.url} (time scale x{args.time_scale:g})", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        server.serve_forever()
    return 0


def _seed(args: argparse.Namespace) -> int:
    import time

    from emulator.sim.openimages import seed_openimages

    started = time.perf_counter()
    summary = seed_openimages(
        args.endpoint_url, images=args.images, seed=args.seed, bucket=args.bucket, cache_dir=args.cache_dir
    )
    print(f"seeded s3://{args.bucket} in {time.perf_counter() - started:.1f} s: {summary}", flush=True)
    return 0


def _seed_text(args: argparse.Namespace) -> int:
    from emulator.sim.textcorpus import STYLES, seed_text

    try:
        summary = seed_text(
            args.endpoint_url,
            args.bucket,
            args.prefix,
            corpus=args.corpus,
            articles=args.articles,
            labeled_share=args.labeled_share,
            seed=args.seed,
            label_attribute=args.label_attribute_name,
            style=STYLES[args.style],
        )
    except (ValueError, OSError) as exc:  # a bad corpus line, an unreadable file, a refused truth: say which
        print(f"seed-text: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"seeded {summary['manifest']} in {summary['seconds']:.1f} s: {summary}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve S3, Logs, STS, IAM, SageMaker (+ labeling jobs) on one port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4566, help="0 picks a free port (printed)")
    serve.add_argument(
        "--time-scale", type=float, default=1.0, help="simulated seconds per real second for labeling jobs"
    )
    serve.add_argument("--latency-ms", type=float, default=0.0, help="fault: delay every request")
    serve.add_argument("--throttle-fraction", type=float, default=0.0, help="fault: share of throttled requests")
    serve.add_argument("--error-fraction", type=float, default=0.0, help="fault: share of 500-answered requests")
    serve.add_argument("--fault-only", default="", help="fault: comma-separated operations/services it applies to")
    serve.set_defaults(func=_serve)

    seed = sub.add_parser("seed-openimages", help="create the synthetic Open Images mirror on an endpoint")
    seed.add_argument("--endpoint-url", required=True, help="the emulator's URL, e.g. http://127.0.0.1:4566")
    seed.add_argument("--images", type=int, default=2500, help="bird images of at most 6 MB (others come on top)")
    seed.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes")
    seed.add_argument("--bucket", default="open-images-dataset")
    seed.add_argument(
        "--cache-dir",
        type=Path,
        help="keep the painted files here and read them back next time (the same bytes; keyed by the arguments, "
        "the painting code and the numpy and Pillow versions)",
    )
    seed.set_defaults(func=_seed)

    text = sub.add_parser("seed-text", help="write a text-classification corpus to S3 and register its answers")
    text.add_argument("--endpoint-url", required=True, help="the emulator's URL, e.g. http://127.0.0.1:4566")
    text.add_argument("--bucket", required=True, help="created if missing")
    text.add_argument("--prefix", required=True, help="writes <prefix>/input.manifest and label_categories.json")
    text.add_argument("--corpus", help="a labeled file, one 'text<TAB>class' per line (default: synthetic news)")
    text.add_argument("--articles", type=int, default=10_000, help="texts to write (at most this many of --corpus)")
    text.add_argument("--labeled-share", type=float, default=0.2, help="share of lines already human-labeled")
    text.add_argument("--seed", type=int, default=0, help="the same seed gives the same synthetic headlines")
    text.add_argument("--label-attribute-name", default="category", help="the manifest's label attribute")
    text.add_argument(
        "--style",
        choices=("hard", "clear"),
        default="hard",
        help="synthetic headlines: 'hard' (a third crossovers, a third vague) or 'clear' (a tenth of each)",
    )
    text.set_defaults(func=_seed_text)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "serve" and args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    if args.command == "seed-openimages" and args.images < 1:
        parser.error("--images must be >= 1")
    if args.command == "seed-text" and args.articles < 1:
        parser.error("--articles must be >= 1")
    if args.command == "seed-text" and not 0 <= args.labeled_share <= 1:
        parser.error("--labeled-share must be within [0, 1]")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
