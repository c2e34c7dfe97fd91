"""`make demo-active-learning`: the second seed's active-learning loop end to end on the local AWS stand-in.

Starts the emulator on a free loopback port, seeds the synthetic news corpus (10,000 headlines, 20% labeled, their
true classes registered with the emulator), while Airflow's scheduler, triggerer and Execution API server
start (scripts/demo.py's `run_on_airflow`), runs `active_learning_news` (or `GT_DEMO_DAG`, e.g.
`active_learning_news_custom`) on them, and prints the per-round table, the shares beside the
seed's 52% / 48% and the accuracy of the labels. Airflow's and the emulator's logs go to files under
`.airflow/demo-logs/`, whose paths are printed.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from scripts.demo import (  # noqa: E402 - the runner every demo shares
    JobProgress,
    fail,
    run_on_airflow,
    with_emulator,
)

DAG_ID = os.environ.get("GT_DEMO_DAG", "active_learning_news")
ARTICLES = os.environ.get("GT_DEMO_ARTICLES", "10000")
TIME_SCALE = os.environ.get("GT_DEMO_TIME_SCALE", "100000")
STYLE = os.environ.get("GT_DEMO_STYLE", "clear")  # seed-text --style: hard | clear
CHECK_INTERVAL = os.environ.get("GT_DEMO_CHECK_INTERVAL", "1")  # the emulator's jobs take seconds
BUCKET, PREFIX = "gt-active-learning-news", "corpus/news"  # where include/active_learning/news*.yaml read


def main() -> int:
    return with_emulator(TIME_SCALE, run_demo)


def run_demo(url: str) -> int:
    started = time.monotonic()
    seed = [sys.executable, "-m", "emulator", "seed-text", "--endpoint-url", url, "--bucket", BUCKET]
    seed += ["--prefix", PREFIX, "--articles", ARTICLES, "--labeled-share", "0.2", "--seed", "0", "--style", STYLE]
    print(f"corpus: {ARTICLES} synthetic headlines ({STYLE}), 20% labeled, at s3://{BUCKET}/{PREFIX}/", flush=True)
    _, run_id = run_on_airflow(DAG_ID, url, seed, JobProgress(url, DAG_ID.replace("_", "-")), CHECK_INTERVAL)
    wall = time.monotonic() - started
    report_json = REPO / "reports" / DAG_ID / run_id / "report.json"
    if not report_json.exists():
        return fail(f"the run succeeded but wrote no {report_json.relative_to(REPO)}")
    from groundtruth.active_learning_report import summary_text

    report = json.loads(report_json.read_text())
    totals = report["totals"]
    print(f"\n{DAG_ID} run {report['run_id']}\n")
    print(summary_text(report))
    accuracy = totals.get("auto_label_accuracy")
    print(
        f"\nauto-labeled {totals['auto_labeled']:,} of {totals['objects']:,} ({totals['auto_labeled_pct']:.1f}%), "
        f"human {totals['human_labeled_pct']:.1f}% — the seed's real run: 48% auto / 52% human"
    )
    known = "not known" if accuracy is None else f"{accuracy:.1%}"
    print(f"auto-label accuracy: {known}; cost ${totals['cost_usd']:,.2f}")
    print(f"final manifest: {totals['final_manifest']}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"wall time {wall:.0f} s; peak memory of the largest process {peak_mb:.0f} MB")
    print(f"report: {report_json.with_name('report.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
