"""A real `airflow backfill create` over three nights, run by a real scheduler (LocalExecutor), triggerer and
Execution API server as subprocesses (scripts/airflow_processes.py), against the session's emulator: the nights are
labeled in date order. ~1.5 minutes on 2 cores.
"""

from __future__ import annotations

import itertools

import pytest

from scripts.airflow_processes import AirflowProcesses, poll
from tests.nightly.conftest import DAG_ID, SHARD_SIZE, write_test_include

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FROM_DATE, TO_DATE = "2026-01-01", "2026-01-03T23:59:59"  # cron 03:00: the nights of Jan 1, 2 and 3
BACKFILL_DEADLINE = 420  # seconds: a hang guard; a healthy run takes 90-150 s on 2 cores


def test_backfill_labels_the_nights_in_date_order(nightly_mirror, fast_auto_labeling, boto_session, emulator, tmp_path):
    # A labeling task whose job ends within seconds of its deferral can lose its resumed try to Airflow's stale-event
    # race (apache/airflow #72716, open in 3.3; seen here under a loaded suite); its retry reattaches to the finished
    # job, after a second instead of the production 5 minutes.
    include = write_test_include(tmp_path / "include", job_retry_delay_seconds=1)
    with AirflowProcesses(tmp_path, ["nightly_labeling.py"], include, emulator.url) as airflow:
        airflow.prepare()
        airflow.start_api_server()
        # Created before the scheduler starts, so the command does not race it for SQLite's write lock.
        created = airflow.cli(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            FROM_DATE,
            "--to-date",
            TO_DATE,
            "--reprocess-behavior",
            "failed",
        )
        airflow.start_scheduler_and_triggerer()
        assert len(airflow.runs(DAG_ID, "backfill")) == 3, created  # the backfill creates its runs at once, queued

        def finished():
            runs = airflow.runs(DAG_ID, "backfill")
            return runs if len(runs) == 3 and all(state in ("success", "failed") for _, _, state in runs) else None

        try:
            runs = poll("three backfill runs to finish", finished, deadline=BACKFILL_DEADLINE, interval=1)
        except (AssertionError, OSError):  # a failed check, or a process that did not answer
            airflow.print_logs()
            raise
    assert [state for _, _, state in runs] == ["success"] * 3, (runs, created)
    assert [logical[:10] for _, logical, _ in runs] == ["2026-01-01", "2026-01-02", "2026-01-03"]

    # In date order: each night's job started after the previous night's finished, from its final model.
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    returned = airflow.xcoms(DAG_ID, "label_shard")
    jobs = [
        sagemaker.describe_labeling_job(LabelingJobName=returned[run_id]["LabelingJobName"]) for run_id, _, _ in runs
    ]
    assert [j["LabelCounters"]["TotalLabeled"] for j in jobs] == [SHARD_SIZE] * 3
    initial = [(j.get("LabelingJobAlgorithmsConfig") or {}).get("InitialActiveLearningModelArn") for j in jobs]
    final = [(j.get("LabelingJobOutput") or {}).get("FinalActiveLearningModelArn") for j in jobs]
    assert initial == [None, final[0], final[1]] and all(final)
    # Each night read the pointer only after the previous night's model step had ended.
    reads, publishes = airflow.task_windows(DAG_ID, "read_latest_model"), airflow.task_windows(DAG_ID, "publish_model")
    order = [run_id for run_id, _, _ in runs]
    for before, after in itertools.pairwise(order):
        assert reads[after][0] >= publishes[before][1], (reads, publishes)
