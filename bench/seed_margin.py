"""The seed's pre-trained-model experiment, repeated: how far the pretrained job's machine-labeled share stands above
the fair baseline's, run after run.

Each run is the three jobs of tests/emulator/test_seed_experiment.py (fresh job names, so fresh random streams for
sampling, workers and training) against one in-process emulator and one 2,500-bird mirror.
Usage: python bench/seed_margin.py [--runs 5] [--rounds] [--prefix P]
(about 2 minutes per run on 2 cores, plus ~1 minute of seeding)
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", action="store_true", help="log every auto-labeling round of every job")
    parser.add_argument(
        "--prefix",
        help="name the jobs PREFIX-iteration-N (PREFIX-rK-iteration-N over several runs): a job's random streams "
        "derive from its name, so a prefix replays a run (the test's is seed-experiment); default: fresh names",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if args.rounds:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("emulator.labeling").setLevel(logging.INFO)

    from emulator.app import build_app
    from emulator.server import EmulatorServer
    from emulator.sim.openimages import seed_openimages
    from tests.emulator.seed import CLEAR_MARGIN_POINTS, JOBS, figures, mirror_birds, run_experiment

    server = EmulatorServer("127.0.0.1", 0, build_app(time_scale=1e6))
    server.start()
    try:
        seed_openimages(server.url, images=2500, seed=0)
        session = boto3.session.Session(  # the emulator accepts any credentials
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
            region_name="us-east-1",
        )
        s3 = session.client("s3", endpoint_url=server.url)
        sagemaker = session.client("sagemaker", endpoint_url=server.url)
        birds = mirror_birds(s3)
        rows = []
        for run in range(1, args.runs + 1):
            prefix = args.prefix if not args.prefix or args.runs == 1 else f"{args.prefix}-r{run}"
            jobs, wall = run_experiment(s3, sagemaker, server.app.labeling, birds, bucket="seed-margin", prefix=prefix)
            figs = figures(s3, jobs)
            pct = {k: figs[k]["machine_pct"] for k in JOBS}
            margin = pct["iteration-2"] - pct["iteration-3"]
            worst = min(figs[k]["machine_miou"] for k in JOBS if figs[k]["n"])
            mious = " / ".join(f"{figs[k]['machine_miou']:.3f}" for k in JOBS)
            rows.append((margin, worst, figs["all"]["machine_miou"]))
            print(
                f"run {run}: machine-labeled {pct['iteration-1']:.1f}% / {pct['iteration-2']:.1f}% / "
                f"{pct['iteration-3']:.1f}%  margin {margin:+.1f} points  "
                f"machine mIoU {mious} (all {figs['all']['machine_miou']:.3f})  "
                f"{wall:.0f} s",
                flush=True,
            )
    finally:
        server.stop()
    margins = [m for m, _, _ in rows]
    summary = {
        "runs": len(rows),
        "margin_mean": round(statistics.mean(margins), 1),
        "margin_sd": round(statistics.stdev(margins), 1) if len(margins) > 1 else None,
        "margin_min": round(min(margins), 1),
        "margin_max": round(max(margins), 1),
        f"runs_at_or_above_{CLEAR_MARGIN_POINTS:g}": sum(m >= CLEAR_MARGIN_POINTS for m in margins),
        "runs_at_or_above_the_seeds_19": sum(m >= 19 for m in margins),
        "lowest_job_machine_miou": round(min(w for _, w, _ in rows), 3),
        "lowest_experiment_machine_miou": round(min(a for _, _, a in rows), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
