"""`make demo-active-learning`: the second seed's active-learning loop end to end on the local AWS stand-in.

Starts the emulator on a free loopback port, seeds the synthetic news corpus (10,000 headlines, 20% labeled, their
true classes registered with the emulator), runs `active_learning_news` (or `GT_DEMO_DAG`, e.g.
`active_learning_news_custom`) with `airflow dags test`, and prints the per-round table, the shares beside the
seed's 52% / 48% and the accuracy of the labels. Airflow's and the emulator's logs go to files under
`.airflow/demo-logs/`, whose paths are printed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from scripts.demo import (  # noqa: E402 - the shared Airflow environment of every demo
    LOGS,
    JobProgress,
    airflow_env,
    fail,
    run_dag_test,
    start_emulator,
    stop_emulator,
)

DAG_ID = os.environ.get("GT_DEMO_DAG", "active_learning_news")
ARTICLES = os.environ.get("GT_DEMO_ARTICLES", "10000")
TIME_SCALE = os.environ.get("GT_DEMO_TIME_SCALE", "100000")
STYLE = os.environ.get("GT_DEMO_STYLE", "clear")  # seed-text --style: hard | clear
CHECK_INTERVAL = os.environ.get("GT_DEMO_CHECK_INTERVAL", "1")  # the emulator's jobs take seconds
BUCKET, PREFIX = "gt-active-learning-news", "corpus/news"  # where include/active_learning/news*.yaml read


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    emulator_log = LOGS / "emulator.log"
    with emulator_log.open("w") as sink:
        try:
            emulator, url = start_emulator(TIME_SCALE, stderr=sink)
        except RuntimeError as exc:
            return fail(f"{exc}; see {emulator_log}")
        print(f"emulator: {url} (pid {emulator.pid}, time scale x{TIME_SCALE}); log: {emulator_log}")
        try:
            return run_demo(url)
        finally:
            stop_emulator(emulator)


def run_demo(url: str) -> int:
    started = time.monotonic()
    env = airflow_env(url)
    env["GT_CHECK_INTERVAL_SECONDS"] = CHECK_INTERVAL
    seeded = subprocess.run(
        [
            sys.executable,
            "-m",
            "emulator",
            "seed-text",
            "--endpoint-url",
            url,
            "--bucket",
            BUCKET,
            "--prefix",
            PREFIX,
            "--articles",
            ARTICLES,
            "--labeled-share",
            "0.2",
            "--seed",
            "0",
            "--style",
            STYLE,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if seeded.returncode != 0:
        return fail(f"seed-text failed: {seeded.stderr.strip()[-2000:]}")
    print(f"corpus: {ARTICLES} synthetic headlines ({STYLE}), 20% labeled, at s3://{BUCKET}/{PREFIX}/")
    code, airflow_log = run_dag_test(DAG_ID, env, JobProgress(url, DAG_ID.replace("_", "-")))
    wall = time.monotonic() - started
    reports = sorted((REPO / "reports" / DAG_ID).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if code != 0:
        return fail(f"`airflow dags test {DAG_ID}` failed (exit {code}); see {airflow_log}")
    if not reports:
        return fail(f"the run succeeded but wrote no report under reports/{DAG_ID}/")
    from groundtruth.active_learning_report import summary_text

    report = json.loads(reports[-1].read_text())
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
    print(f"report: {reports[-1].with_name('report.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
