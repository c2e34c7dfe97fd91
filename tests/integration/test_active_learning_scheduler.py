"""The active-learning family under a real scheduler, triggerer and API server (scripts/airflow_processes.py):

- `airflow backfill create` over three dates of a scheduled config with our own model (include/models/
  news_classifier), each date its own shard with no labels at all: three independent loops — each bootstraps to 20%,
  trains, labels its own shard and exports its own manifest; nothing collides, and the code bundle is uploaded once;
- meanwhile a run of a second config whose training script trains until it is stopped: its `round_1.train` task is
  marked failed through the REST API (what the UI's "Mark as failed" calls) while it is deferred in the triggerer, and
  its training job is stopped — no second training job;
- before that, with no triggerer running yet, a third config's `round_1.train` is marked failed while deferred: no
  trigger ever ran to stop its job, and the run's `stop_orphaned_jobs` teardown stops it.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import yaml

from emulator.sim.textcorpus import STYLES, seed_text
from scripts.airflow_processes import AirflowProcesses, poll
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

BUCKET = "gt-al-scheduler"
DATES = ["2026-11-10", "2026-11-11", "2026-11-12"]
DAILY, STUCK, ORPHAN = "active_learning_daily", "active_learning_stuck", "active_learning_orphan"
DEADLINE = 420  # seconds: a hang guard; the runs take about 2 minutes on 2 cores

# A training script that trains until the job is stopped (SIGTERM from the service), as an hours-long job does.
STUCK_TRAIN = '''\
"""Trains until stopped: the service's StopTrainingJob sends SIGTERM."""
import signal
import sys
import threading

stopped = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopped.set())
print("training until stopped", flush=True)
while not stopped.wait(3600):
    pass
sys.exit(0)
'''


def write_include(root, base: dict) -> None:
    (root / "active_learning").mkdir(parents=True)
    shutil.copytree(REPO / "include" / "models" / "news_classifier", root / "models" / "news_classifier")
    (root / "models" / "stuck").mkdir()
    (root / "models" / "stuck" / "train.py").write_text(STUCK_TRAIN)
    (root / "models" / "stuck" / "inference.py").write_text(textwrap.dedent('"""Never served."""\n'))
    # A paid-job task whose job ends within seconds of its deferral can lose its resumed try to Airflow's stale-event
    # race (apache/airflow #72716, open in 3.3); its retry reattaches to the finished job: a second, not 5 minutes.
    common = {**base, "prefix": "al-scheduler", "bucket": BUCKET, "check_interval_seconds": 0.5, "retries": 1,
              "job_retry_delay_seconds": 1}  # fmt: skip
    daily = {
        **common,
        "name": "daily",
        "schedule": "@daily",
        "start_date": DATES[0],
        "input_manifest": f"s3://{BUCKET}/shards/dt={{{{ ds }}}}/input.manifest",
        "label_categories": f"s3://{BUCKET}/shards/dt={{{{ ds }}}}/label_categories.json",
        "output_prefix": f"s3://{BUCKET}/runs/daily/",
        "human_batch_share": 0.4,  # two rounds at most: the test is about independence, not the loop's length
    }
    stuck = {
        **common,
        "name": "stuck",
        "input_manifest": f"s3://{BUCKET}/stuck/input.manifest",
        "label_categories": f"s3://{BUCKET}/stuck/label_categories.json",
        "output_prefix": f"s3://{BUCKET}/runs/stuck/",
        "model": {**base["model"], "source_dir": "models/stuck"},
    }
    orphan = {**stuck, "name": "orphan", "output_prefix": f"s3://{BUCKET}/runs/orphan/"}
    for config in (daily, stuck, orphan):
        (root / "active_learning" / f"{config['name']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def training_jobs(sagemaker) -> dict[str, str]:
    pages = sagemaker.get_paginator("list_training_jobs").paginate()
    return {j["TrainingJobName"]: j["TrainingJobStatus"] for page in pages for j in page["TrainingJobSummaries"]}


def read(s3, uri: str) -> list[dict]:
    bucket, key = uri[5:].split("/", 1)
    return [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]


def test_a_backfill_runs_independent_loops_and_a_deferred_training_task_marked_failed_stops_its_job(
    emulator, boto_session, s3, tmp_path
):
    from groundtruth.requests import labeling_job_name

    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    base = yaml.safe_load((REPO / "include" / "active_learning" / "news_custom.yaml").read_text())
    include = tmp_path / "include"
    write_include(include, base)
    for k, ds in enumerate(DATES):
        seed_text(emulator.url, BUCKET, f"shards/dt={ds}", articles=120, labeled_share=0.0, seed=40 + k,
                  style=STYLES["clear"])  # fmt: skip
    seed_text(emulator.url, BUCKET, "stuck", articles=60, labeled_share=0.2, seed=50, style=STYLES["clear"])
    before = training_jobs(sagemaker)

    with AirflowProcesses(tmp_path, ["active_learning.py"], include, emulator.url, public_api=True) as airflow:
        airflow.prepare()
        created = airflow.cli("backfill", "create", "--dag-id", DAILY, "--from-date", DATES[0], "--to-date",
                              f"{DATES[-1]}T23:59:59")  # fmt: skip
        airflow.start_api_server()
        stuck_run, orphan_run = "manual__stuck", "manual__orphan"
        airflow.api("POST", f"/dags/{STUCK}/dagRuns", {"dag_run_id": stuck_run, "logical_date": None})
        airflow.api("POST", f"/dags/{ORPHAN}/dagRuns", {"dag_run_id": orphan_run, "logical_date": None})
        airflow.start("scheduler")  # the triggerer comes later
        try:
            # no triggerer yet: the orphan run's training is deferred with nobody running its trigger; marked failed,
            # no on_kill can run, and the run's teardown stops the job
            poll(
                "round_1.train of the orphan run to be deferred",
                lambda: airflow.task_state(ORPHAN, orphan_run, "round_1.train") == "deferred",
                deadline=DEADLINE,
            )
            orphan_job = labeling_job_name(ORPHAN, orphan_run, "round_1.train", 1)
            assert sagemaker.describe_training_job(TrainingJobName=orphan_job)["TrainingJobStatus"] == "InProgress"
            airflow.api("PATCH", f"/dags/{ORPHAN}/dagRuns/{orphan_run}/taskInstances/round_1.train",
                        {"new_state": "failed"})  # fmt: skip
            poll(
                f"training job {orphan_job} to stop",
                lambda: sagemaker.describe_training_job(TrainingJobName=orphan_job)["TrainingJobStatus"] == "Stopped",
                deadline=120,
            )
            assert airflow.task_log(ORPHAN, orphan_run, "round_1.train", trigger=True) == ""  # no trigger ever ran
            # the job stops during the teardown; its result is written when it returns, a moment later
            poll(
                "the orphan run's stop_orphaned_jobs to succeed",
                lambda: airflow.task_state(ORPHAN, orphan_run, "stop_orphaned_jobs") == "success",
                deadline=60,
            )
            assert airflow.xcoms(ORPHAN, "stop_orphaned_jobs") == {orphan_run: [orphan_job]}
            said = airflow.task_log(ORPHAN, orphan_run, "stop_orphaned_jobs")
            assert f"Training job {orphan_job} of task round_1.train is still running" in said, said[-3000:]
            airflow.start("triggerer")
            # the stuck run's training is deferred in the triggerer, its job InProgress: mark the task failed
            poll(
                "round_1.train of the stuck run to be deferred",
                lambda: airflow.task_state(STUCK, stuck_run, "round_1.train") == "deferred",
                deadline=DEADLINE,
            )
            job = labeling_job_name(STUCK, stuck_run, "round_1.train", 1)
            assert sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "InProgress"
            # ... and its trigger runs in the triggerer (it logs the job's status at its first check). A task marked
            # failed before any triggerer has picked up its trigger has no one to stop its job (docs/ARCHITECTURE.md,
            # "stopping on kill").
            poll(
                "the triggerer to run round_1.train's wait",
                lambda: f"Training job {job} is " in airflow.task_log(STUCK, stuck_run, "round_1.train", trigger=True),
                deadline=DEADLINE,
            )
            airflow.api("PATCH", f"/dags/{STUCK}/dagRuns/{stuck_run}/taskInstances/round_1.train",
                        {"new_state": "failed"})  # fmt: skip
            poll(
                f"training job {job} to stop",
                lambda: sagemaker.describe_training_job(TrainingJobName=job)["TrainingJobStatus"] == "Stopped",
                deadline=120,
            )

            def finished():
                runs = airflow.runs(DAILY, "backfill") + airflow.runs(STUCK)
                return runs if len(runs) == 4 and all(s in ("success", "failed") for *_, s in runs) else None

            poll("the four runs to finish", finished, deadline=DEADLINE, interval=1)
            runs = airflow.runs(DAILY, "backfill")
            assert [(logical[:10], state) for _, logical, state in runs] == [(ds, "success") for ds in DATES], created
        except (AssertionError, OSError):  # a failed check, or a process that did not answer
            airflow.print_logs(task_log_contains=f"dag_id={STUCK}/")
            airflow.print_failed_task_logs(DAILY)
            airflow.print_failed_task_logs(ORPHAN)
            raise

    assert airflow.runs(STUCK)[0][2] == "failed"
    assert airflow.runs(ORPHAN)[0][2] == "failed"  # the teardown's success does not make the run a success
    assert airflow.task_state(STUCK, stuck_run, "round_1.train") == "failed"
    assert airflow.task_state(STUCK, stuck_run, "export") == "upstream_failed"
    new = {name: status for name, status in training_jobs(sagemaker).items() if name not in before}
    assert {n: s for n, s in new.items() if n.startswith("active-learning-stuck")} == {job: "Stopped"}

    # three independent loops: each bootstrapped its own shard to 20% and exported it whole, its own model
    merged = airflow.xcoms(DAILY, "bootstrap.merge", "state")
    exported = airflow.xcoms(DAILY, "export")
    for run_id, logical, _ in runs:
        ds = logical[:10]
        assert merged[run_id]["bootstrap"]["human_labeled"] == 24  # 20% of 120
        lines = read(s3, exported[run_id]["FinalManifestS3Uri"])
        shard = read(s3, f"s3://{BUCKET}/shards/dt={ds}/input.manifest")
        assert [r["source"] for r in lines] == [r["source"] for r in shard]
        assert all(isinstance(r["category"], int) for r in lines)
    assert len({e["FinalManifestS3Uri"] for e in exported.values()}) == 3
    assert len({e["TrainedModelArn"] for e in exported.values()}) == 3
    assert all(status == "Completed" for name, status in new.items() if name.startswith("active-learning-daily"))
    bundles = s3.list_objects_v2(Bucket=BUCKET, Prefix="al-scheduler/code/")["Contents"]
    # one bundle per model source, uploaded once for all runs: the daily loops' and the stuck run's
    assert len(bundles) == 2 and all(b["Key"].endswith("/sourcedir.tar.gz") for b in bundles)
