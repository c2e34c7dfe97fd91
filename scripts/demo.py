"""`make demo`: the default experiment end to end on the local AWS stand-in.

Starts the emulator on a free loopback port, seeds the synthetic Open Images mirror, runs
`labeling_experiment_birds` with `airflow dags test` (SQLite metadata DB under .airflow/), prints a progress line
per labeling job while it runs (status changes and each further quarter of its objects labeled), then the per-job
summary table and the report path, and stops the emulator whatever happens. Airflow's and the emulator's logs go to
files under `.airflow/demo-logs/`, whose paths are printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
DAG_ID = "labeling_experiment_birds"
BIN = Path(sys.executable).parent
TIME_SCALE = os.environ.get("GT_DEMO_TIME_SCALE", "600")
IMAGES = os.environ.get("GT_DEMO_IMAGES", "2500")
LOGS = REPO / ".airflow" / "demo-logs"
# Jobs here last minutes, not hours: check them every few seconds (configuration, as the production default of a
# minute is for AWS's hours-long jobs).
CHECK_INTERVAL = os.environ.get("GT_DEMO_CHECK_INTERVAL", "5")


def fail(message: str) -> int:
    print(f"make demo: {message}", file=sys.stderr)
    return 2


def airflow_env(endpoint_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    home = Path(os.environ.get("GT_AIRFLOW_HOME") or REPO / ".airflow")
    env.update(
        {
            # `airflow standalone` starts its services as `airflow ...` subprocesses: the venv's bin/ must be on
            # PATH even when nobody activated the venv (make does not).
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_CONN_AWS_DEFAULT": (
                f"aws://demo:demo@/?region_name=us-east-1&endpoint_url={quote(endpoint_url, safe='')}"
            ),
            "AWS_EC2_METADATA_DISABLED": "true",
            "GT_LOCAL_REPORTS_DIR": str(REPO / "reports"),
            "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
            "MPLBACKEND": "Agg",
        }
    )
    return env


def start_emulator(time_scale: str = TIME_SCALE, stderr=None) -> tuple[subprocess.Popen, str]:
    """The emulator on a free loopback port (its log to `stderr`, e.g. a file); returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--time-scale", time_scale],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"emulator did not start (printed {line!r})")
    return proc, line.split("listening on ")[1].split()[0]


def stop_emulator(emulator: subprocess.Popen) -> None:
    emulator.terminate()
    try:
        emulator.wait(timeout=20)
    except subprocess.TimeoutExpired:
        emulator.kill()


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    emulator_log = LOGS / "emulator.log"
    with emulator_log.open("w") as sink:
        try:
            emulator, url = start_emulator(stderr=sink)
        except RuntimeError as exc:
            return fail(f"{exc}; see {emulator_log}")
        print(f"emulator: {url} (pid {emulator.pid}, time scale x{TIME_SCALE}); log: {emulator_log}")
        try:
            return run_demo(url)
        except subprocess.CalledProcessError as exc:
            command = " ".join(map(str, exc.cmd[:4]))
            return fail(f"`{command} ...` failed with exit {exc.returncode}: {(exc.stderr or '').strip()[-2000:]}")
        finally:
            stop_emulator(emulator)


class JobProgress(threading.Thread):
    """While a DAG runs: a line per labeling job whose name holds `name_contains` when its status changes or
    another quarter of its objects is labeled (human / machine), read from the endpoint every `every` seconds."""

    def __init__(self, url: str, name_contains: str, every: float = 2.0) -> None:
        super().__init__(name="demo-progress", daemon=True)
        self.url, self.name_contains, self.every = url, name_contains, every
        self.started = time.monotonic()
        self.done = threading.Event()
        self.seen: dict[str, tuple[str, int]] = {}

    def run(self) -> None:
        import boto3

        # the emulator takes any credentials; these never leave loopback
        client = boto3.client(
            "sagemaker", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="demo",
            aws_secret_access_key="demo",  # noqa: S106
        )  # fmt: skip
        while True:
            stopping = self.done.wait(self.every)
            # once more after the run ended (the last statuses); progress is best effort, the run's outcome counts
            with contextlib.suppress(Exception):
                self.report(client)
            if stopping:
                return

    def stop(self) -> None:
        self.done.set()
        self.join(30)

    def report(self, client) -> None:
        pages = client.get_paginator("list_labeling_jobs").paginate(NameContains=self.name_contains)
        for job in sorted((j for p in pages for j in p["LabelingJobSummaryList"]), key=lambda j: j["CreationTime"]):
            name, status, counters = job["LabelingJobName"], job["LabelingJobStatus"], job.get("LabelCounters") or {}
            total = counters.get("TotalLabeled", 0) + counters.get("Unlabeled", 0)
            quarter = 4 * counters.get("TotalLabeled", 0) // total if total else 0
            if self.seen.get(name) == (status, quarter):
                continue
            self.seen[name] = (status, quarter)
            short = re.sub(r"-[a-z0-9]{12}$", "", name)
            print(
                f"  {time.monotonic() - self.started:5.0f} s  {short:<50} {status:<11} human "
                f"{counters.get('HumanLabeled', 0):>5,}  machine {counters.get('MachineLabeled', 0):>5,}  "
                f"of {total:,}",
                flush=True,
            )


def run_dag_test(dag_id: str, env: dict[str, str], progress: JobProgress | None = None) -> tuple[int, Path]:
    """`airflow dags test dag_id` with its output in `.airflow/demo-logs/<dag_id>.log` (the path is printed), and
    `progress` printing beside it; returns the exit code and the log's path."""
    (REPO / ".airflow").mkdir(exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], cwd=REPO, env=env, check=True, capture_output=True)
    log = LOGS / f"{dag_id}.log"
    print(f"running {dag_id} (airflow dags test); log: {log}", flush=True)
    if progress:
        progress.start()
    try:
        with log.open("w") as sink:
            run = subprocess.run(
                [str(BIN / "airflow"), "dags", "test", dag_id], cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
    finally:
        if progress:
            progress.stop()
    return run.returncode, log


def run_demo(url: str) -> int:
    started = time.monotonic()
    env = airflow_env(url)
    env["GT_CHECK_INTERVAL_SECONDS"] = CHECK_INTERVAL
    seed = [sys.executable, "-m", "emulator", "seed-openimages", "--endpoint-url", url, "--images", IMAGES]
    seed += ["--seed", "0"]
    subprocess.run(seed, cwd=REPO, check=True, env=env, capture_output=True, text=True)
    print(f"mirror: {IMAGES} synthetic Open Images birds seeded")
    code, log = run_dag_test(DAG_ID, env, JobProgress(url, DAG_ID.replace("_", "-")))
    if code != 0:
        return fail(f"`airflow dags test {DAG_ID}` failed (exit {code}); see {log}")
    reports = sorted((REPO / "reports" / DAG_ID).glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return fail(f"the run succeeded but wrote no report under reports/{DAG_ID}/")
    from groundtruth.report import summary_text

    report = json.loads(reports[-1].read_text())
    print(f"\n{DAG_ID} run {report['run_id']}\n")
    print(summary_text(report))
    pretrained = {j["key"]: j["pretrained_model_arn"] for j in report["jobs"]}
    print(f"\niteration-2 started from: {pretrained.get('iteration-2')}")
    print(f"iteration-3 started from: {pretrained.get('iteration-3')}")
    machine = {j["key"]: j["machine_labeled_pct"] for j in report["jobs"]}
    if machine.get("iteration-2") is not None and machine.get("iteration-3") is not None:
        gain = machine["iteration-2"] - machine["iteration-3"]
        print(
            f"pretrained model: iteration-2 machine-labeled {machine['iteration-2']:.1f}% vs iteration-3 "
            f"{machine['iteration-3']:.1f}% ({gain:+.1f} points; the seed's real run: 79% vs 60%, +19)"
        )
    print(f"report: {reports[-1].with_name('report.html')}")
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
