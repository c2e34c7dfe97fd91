"""`make demo`: the default experiment end to end on the local AWS stand-in, on Airflow's own services.

Starts the emulator on a free loopback port; then, side by side, seeds the synthetic Open Images mirror and starts
Airflow's scheduler (LocalExecutor), triggerer and Execution API server on the Airflow home `.airflow/` (SQLite;
scripts/airflow_processes.py); triggers `labeling_experiment_birds` and prints a progress line per labeling job while
it runs (status changes and each further quarter of its objects labeled), then the per-job summary table, how long
iterations 1 and 3 ran side by side, and the report's path. Everything it started is stopped whatever happens.
Airflow's and the emulator's logs go to files under `.airflow/demo-logs/`, whose paths are printed; the task logs
stay under `.airflow/logs/`, where `make airflow` shows them with the run.
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
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path[:0] = [str(REPO), str(REPO / "plugins")]

from scripts.airflow_processes import AirflowProcesses, aws_conn_uri, poll  # noqa: E402

DAG_ID = "labeling_experiment_birds"
TIME_SCALE = os.environ.get("GT_DEMO_TIME_SCALE", "3000")
IMAGES = os.environ.get("GT_DEMO_IMAGES", "2500")
HOME = Path(os.environ.get("GT_AIRFLOW_HOME") or REPO / ".airflow")
LOGS = HOME / "demo-logs"
# Jobs here last minutes, not hours: check them every few seconds (configuration, as the production default of a
# minute is for AWS's hours-long jobs).
CHECK_INTERVAL = os.environ.get("GT_DEMO_CHECK_INTERVAL", "5")
RUN_DEADLINE = 3600  # seconds a demo run may take before the demo gives up on it


class DemoError(Exception):
    """A step of the demo failed; the message names it and where its log is."""


def fail(message: str) -> int:
    print(f"make demo: {message}", file=sys.stderr)
    return 2


def airflow_env(endpoint_url: str) -> dict[str, str]:
    """`make airflow`'s environment: the demo's Airflow home, against `endpoint_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    env.update(
        {
            # `airflow standalone` starts its services as `airflow ...` subprocesses: the venv's bin/ must be on
            # PATH even when nobody activated the venv (make does not).
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "AIRFLOW_HOME": str(HOME),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME / 'airflow.db'}",
            "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_uri(endpoint_url),
            "AWS_EC2_METADATA_DISABLED": "true",
            **REPORT_ENV,
            "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        }
    )
    return env


# where the report task writes its local copy, and matplotlib without a display
REPORT_ENV = {"GT_LOCAL_REPORTS_DIR": str(REPO / "reports"), "MPLBACKEND": "Agg"}


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


def with_emulator(time_scale: str, run) -> int:
    """`run(url)` with the emulator up (its log in `.airflow/demo-logs/emulator.log`), stopped whatever happens."""
    LOGS.mkdir(parents=True, exist_ok=True)
    emulator_log = LOGS / "emulator.log"
    with emulator_log.open("w") as sink:
        try:
            emulator, url = start_emulator(time_scale, stderr=sink)
        except RuntimeError as exc:
            return fail(f"{exc}; see {emulator_log}")
        print(f"emulator: {url} (pid {emulator.pid}, time scale x{time_scale}); log: {emulator_log}")
        try:
            return run(url)
        except DemoError as exc:
            return fail(str(exc))
        finally:
            stop_emulator(emulator)


def main() -> int:
    return with_emulator(TIME_SCALE, run_demo)


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


def run_on_airflow(
    dag_id: str, url: str, seed: list[str], progress: JobProgress, check_interval: str
) -> tuple[AirflowProcesses, str]:
    """Seed the emulator with `seed` (a command) while Airflow's scheduler, triggerer and Execution API server start
    on the demo's home, then trigger `dag_id` and wait for the run, `progress` printing beside it. Returns the stopped
    processes (their database still answers) and the run's id; raises DemoError naming the step that failed."""
    env = {**REPORT_ENV, "GT_CHECK_INTERVAL_SECONDS": check_interval}
    run_id = f"demo__{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"
    with AirflowProcesses(None, None, REPO / "include", url, env=env, home=HOME, process_logs=LOGS) as airflow:
        began = time.monotonic()
        seeding = subprocess.Popen(seed, cwd=REPO, env=airflow.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            airflow.prepare()
            unpausing = airflow.start_cli("dags", "unpause", dag_id)
            airflow.start_scheduler_and_triggerer()
            airflow.start_api_server()
            airflow.wait_cli(unpausing)
        except AssertionError as exc:  # a CLI step or the API server's health check
            seeding.kill()
            raise DemoError(f"Airflow did not start: {str(exc)[-2000:]}; logs in {LOGS}") from None
        finally:
            _, err = seeding.communicate()
        if seeding.returncode != 0:
            raise DemoError(f"seeding failed (`{' '.join(seed[2:4])}`): {err.decode(errors='replace')[-2000:]}")
        print(
            f"airflow: scheduler, triggerer and API server up, emulator seeded ({time.monotonic() - began:.0f} s; "
            f"home {HOME}); logs: {LOGS}/{{scheduler,triggerer,api-server}}.log",
            flush=True,
        )
        try:
            airflow.cli("dags", "trigger", dag_id, "--run-id", run_id)
            print(f"running {dag_id} run {run_id}", flush=True)
            progress.start()
            ended = ("success", "failed")
            state = poll(
                f"{dag_id} run {run_id} to finish",
                lambda: next((s for r, _, s in airflow.runs(dag_id) if r == run_id and s in ended), None),
                deadline=RUN_DEADLINE,
                interval=1,
            )
        except AssertionError as exc:  # the trigger failed, or the run outlived RUN_DEADLINE
            raise DemoError(f"{str(exc)[-2000:]}; logs in {LOGS} and {HOME / 'logs'}") from None
        finally:
            if progress.is_alive():
                progress.stop()
    if state != "success":
        failed = [t for t in airflow.task_states(dag_id, run_id) if t[1] in ("failed", "upstream_failed")]
        raise DemoError(
            f"{dag_id} run {run_id} failed: tasks {failed}; task logs under "
            f"{HOME / 'logs' / f'dag_id={dag_id}' / f'run_id={run_id}'}"
        )
    return airflow, run_id


def side_by_side(airflow: AirflowProcesses, dag_id: str, run_id: str, first: str, second: str) -> str:
    """How long tasks `first` and `second` of a run ran at the same time, against `second`'s wall time."""
    windows = {t: airflow.task_windows(dag_id, t)[run_id] for t in (first, second)}
    (s1, e1), (s2, e2) = (tuple(map(datetime.fromisoformat, windows[t])) for t in (first, second))
    together = max(0.0, (min(e1, e2) - max(s1, s2)).total_seconds())
    own = (e2 - s2).total_seconds()
    return f"{first} and {second} ran side by side for {together:.0f} s, {together / own:.0%} of {second}'s {own:.0f} s"


def run_demo(url: str) -> int:
    started = time.monotonic()
    seed = [sys.executable, "-m", "emulator", "seed-openimages", "--endpoint-url", url, "--images", IMAGES]
    seed += ["--cache-dir", str(HOME / "mirror-cache")]  # painted once, read back by later demos
    progress = JobProgress(url, DAG_ID.replace("_", "-"))
    airflow, run_id = run_on_airflow(DAG_ID, url, [*seed, "--seed", "0"], progress, CHECK_INTERVAL)
    report_json = REPO / "reports" / DAG_ID / run_id / "report.json"
    if not report_json.exists():
        return fail(f"the run succeeded but wrote no {report_json.relative_to(REPO)}")
    from groundtruth.report import summary_text

    report = json.loads(report_json.read_text())
    print(f"\n{DAG_ID} run {report['run_id']} ({IMAGES} birds seeded)\n")
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
    print(side_by_side(airflow, DAG_ID, run_id, "label_iteration_1", "label_iteration_3"))
    print(f"report: {report_json.with_name('report.html')}")
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
