"""How long the labeling tasks hold a worker slot, against the wall time of the jobs they run.

One `labeling_experiment_birds` run on Airflow's own scheduler (LocalExecutor, two slots), triggerer and Execution
API server (the harness the tests use: scripts/airflow_processes.py), against the emulator in this process. A
labeling task holds a slot twice: to create its job and defer, and to take the trigger's event when the job ends;
while the job runs it waits in the triggerer and holds none. The slot time of every task try is what Airflow's own
task supervisor logs when a workload ends (`Workload finished ... duration=...`, one line per slot held, keyed by
task instance id); the jobs' wall time is CreationTime to LastModifiedTime from DescribeLabelingJob.

The emulator's time scale sets how long a job lasts (`--time-scale 4`: ~10 minutes a job for 20 images a half).
On AWS a job of 1,250 images lasts hours; the slot time per task does not grow with it.

Usage: python bench/worker_slots.py [--images 40] [--time-scale 4] [--check-interval 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

# tests.conftest isolates this process as it does a test session (its own Airflow home, no AWS credentials).
from scripts.airflow_processes import AirflowProcesses, aws_conn_uri, poll  # noqa: E402
from tests.conftest import AIRFLOW_HOME  # noqa: E402

DAG_ID = "labeling_experiment_birds"
WORKLOAD = re.compile(r"Workload finished.*?duration=([0-9.]+).*?workload_id=([0-9a-f-]+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40, help="birds in the run (two halves)")
    parser.add_argument("--time-scale", type=float, default=4.0, help="the emulator's simulated seconds per second")
    parser.add_argument("--check-interval", type=float, default=10.0, help="seconds between a wait's status checks")
    parser.add_argument("--deadline", type=float, default=3600.0, help="give up after this many seconds")
    args = parser.parse_args()

    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the emulator's access log

    from emulator.app import build_app
    from emulator.server import EmulatorServer
    from emulator.sim.openimages import seed_openimages

    emulator = EmulatorServer("127.0.0.1", 0, build_app(time_scale=args.time_scale))
    emulator.start()
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = aws_conn_uri(emulator.url)
    sagemaker = boto3.client("sagemaker", endpoint_url=emulator.url)  # the dummy credentials tests.conftest set
    try:
        seed_openimages(emulator.url, images=max(args.images, 40), seed=0)
        with tempfile.TemporaryDirectory(prefix="gt-worker-slots-") as root:
            env = {"GT_CHECK_INTERVAL_SECONDS": str(args.check_interval)}
            with AirflowProcesses(
                Path(root), ["labeling_experiments.py"], REPO / "include", emulator.url, env=env
            ) as af:
                return measure(af, sagemaker, args)
    finally:
        emulator.stop()
        shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


def measure(airflow: AirflowProcesses, sagemaker, args) -> int:
    airflow.prepare()
    airflow.start_api_server()
    # below 2 x 1,250 images no job trains a model, and the config refuses auto-labeling without one
    conf = {"images": args.images, "auto_labeling": False, "bucket": "gt-worker-slots"}
    airflow.cli("dags", "trigger", DAG_ID, "--run-id", "bench", "--conf", json.dumps(conf))
    started = time.monotonic()
    airflow.start_scheduler_and_triggerer()

    def finished():
        runs = airflow.runs(DAG_ID)
        return runs if runs and runs[0][2] in ("success", "failed") else None

    ((_, _, state),) = poll("the run to finish", finished, deadline=args.deadline, interval=2)
    wall = time.monotonic() - started
    if state != "success":
        airflow.print_logs()
        print(f"the run ended {state}", file=sys.stderr)
        return 1

    # SQLite stores the ids without dashes; the supervisor logs them with
    tasks = {ti_id.replace("-", ""): task for ti_id, task in airflow.sql(
        "SELECT id, task_id FROM task_instance WHERE run_id = 'bench'")}  # fmt: skip

    def slots() -> dict[str, list[float]] | None:
        held: dict[str, list[float]] = defaultdict(list)
        for line in (airflow.home / "scheduler.log").read_text().splitlines():
            if match := WORKLOAD.search(line):
                held[tasks.get(match.group(2).replace("-", ""), match.group(2))].append(float(match.group(1)))
        return held if set(tasks.values()) <= set(held) else None  # the last task's line follows the run's end

    held = poll("every task's 'Workload finished' line", slots, deadline=60)
    print(f"{DAG_ID}: {args.images} images, emulator time scale x{args.time_scale:g}, run {wall:.0f} s")
    print("a job's wall time here (the emulator's clock / its time scale), and as the emulator simulates it:")
    print(f"{'task':<20} {'slots':>5} {'slot s':>7} {'job s':>7} {'slot/job':>9} {'simulated s':>12} {'slot/job':>9}")
    total_slot = total_job = 0.0
    for i in (1, 2, 3):
        task = f"label_iteration_{i}"
        job = airflow.xcoms(DAG_ID, task)["bench"]["LabelingJobName"]
        described = sagemaker.describe_labeling_job(LabelingJobName=job)
        simulated = (described["LastModifiedTime"] - described["CreationTime"]).total_seconds()
        job_wall, slot = simulated / args.time_scale, sum(held[task])
        total_slot, total_job = total_slot + slot, total_job + job_wall
        print(
            f"{task:<20} {len(held[task]):>5} {slot:>7.1f} {job_wall:>7.0f} {slot / job_wall:>9.2%} {simulated:>12.0f}"
            f" {slot / simulated:>9.3%}"
        )
    ratio = total_slot / total_job
    print(f"{'labeling tasks':<20} {'':>5} {total_slot:>7.1f} {total_job:>7.0f} {ratio:>9.2%}")
    print(f"every task of the run: {sum(map(len, held.values()))} slots held, {sum(map(sum, held.values())):.1f} s")
    print(f"target: the labeling tasks' slot time <= 1% of their jobs' wall time: measured {ratio:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
