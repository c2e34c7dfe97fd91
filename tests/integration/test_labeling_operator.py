"""CreateLabelingJobOperator in real DAG runs against the emulator: the retry-safety promises, end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from emulator.faults import FaultConfig
from tests.emulator.helpers import request, unique
from tests.integration.conftest import env_request, load_dag

LOGICAL = datetime(2026, 11, 1, tzinfo=UTC)


def jobs_named(sagemaker, name: str) -> list[dict]:
    found = sagemaker.list_labeling_jobs(NameContains=name, MaxResults=100)["LabelingJobSummaryList"]
    return [j for j in found if j["LabelingJobName"].lower().startswith(name.lower())]


def task_state(dagrun, task_id: str = "label") -> str:
    return dagrun.get_task_instance(task_id).state


@pytest.mark.parametrize("deferrable", ["1", "0"], ids=["deferrable", "synchronous"])
def test_third_party_dag_labels_and_a_rerun_reattaches(dag_folder, monkeypatch, small_inputs, sagemaker, deferrable):
    name = unique("thirdparty")
    env_request(monkeypatch, request(name, small_inputs, auto_labeling=False))
    monkeypatch.setenv("GT_TEST_DEFERRABLE", deferrable)
    dag = load_dag(dag_folder)

    first = dag.test(logical_date=LOGICAL, run_after=LOGICAL)
    assert task_state(first) == "success"
    [job] = jobs_named(sagemaker, name)
    assert job["LabelingJobStatus"] == "Completed"
    xcom = first.get_task_instance("label").xcom_pull(task_ids="label")
    assert xcom["LabelingJobArn"] == job["LabelingJobArn"] and xcom["LabelCounters"]["HumanLabeled"] == 20

    # the same run again (what a retry or a clear does): same job, no second one
    second = dag.test(logical_date=LOGICAL, run_after=LOGICAL)
    assert second.run_id == first.run_id and task_state(second) == "success"
    assert [j["LabelingJobArn"] for j in jobs_named(sagemaker, name)] == [job["LabelingJobArn"]]


def test_clear_mid_job_reattaches_to_the_running_job(dag_folder, monkeypatch, small_inputs, sagemaker, held_clock):
    name = unique("cleared")
    env_request(monkeypatch, request(name, small_inputs, auto_labeling=False))
    # First try: the worker launches the job and dies before waiting (wait_for_completion off stands in for it).
    monkeypatch.setenv("GT_TEST_WAIT", "0")
    held_clock.hold()
    first = load_dag(dag_folder).test(logical_date=LOGICAL, run_after=LOGICAL)
    assert task_state(first) == "success"
    assert held_clock.holding.wait(60)
    [running] = jobs_named(sagemaker, name)
    assert running["LabelingJobStatus"] in ("Initializing", "InProgress")

    # Cleared and re-run: it must find the running job, wait for it and return it.
    monkeypatch.setenv("GT_TEST_WAIT", "1")
    held_clock.release()
    second = load_dag(dag_folder).test(logical_date=LOGICAL, run_after=LOGICAL)
    assert task_state(second) == "success"
    [done] = jobs_named(sagemaker, name)
    assert done["LabelingJobArn"] == running["LabelingJobArn"] and done["LabelingJobStatus"] == "Completed"


def test_failing_job_fails_the_task_and_is_not_relaunched(dag_folder, monkeypatch, small_inputs, sagemaker, emulator):
    name = unique("failing")
    env_request(monkeypatch, request(name, small_inputs, auto_labeling=False))
    emulator.app.faults.configure(FaultConfig(fail_job_name_contains=name, fail_job_at="human"))
    try:
        dag = load_dag(dag_folder)
        run = dag.test(logical_date=LOGICAL, run_after=LOGICAL)
        assert task_state(run) == "failed"
        again = dag.test(logical_date=LOGICAL, run_after=LOGICAL)
        assert task_state(again) == "failed"
    finally:
        emulator.app.faults.configure(FaultConfig())
    [job] = jobs_named(sagemaker, name)
    assert job["LabelingJobStatus"] == "Failed" and "injected failure during human" in job["FailureReason"]


def test_throttling_storm_is_survived(dag_folder, monkeypatch, small_inputs, sagemaker, emulator):
    name = unique("throttled")
    env_request(monkeypatch, request(name, small_inputs, auto_labeling=False))
    emulator.app.faults.configure(
        FaultConfig(
            throttle_fraction=0.5,
            error_fraction=0.1,
            only=["SageMaker.DescribeLabelingJob", "SageMaker.CreateLabelingJob", "SageMaker.ListTags"],
            seed=11,
        )
    )
    try:
        run = load_dag(dag_folder).test(logical_date=LOGICAL, run_after=LOGICAL)
        stats = emulator.app.faults.snapshot()
    finally:
        emulator.app.faults.configure(FaultConfig())
    assert task_state(run) == "success"
    assert stats["throttled"] > 0
    assert len(jobs_named(sagemaker, name)) == 1


def test_sigterm_during_a_synchronous_wait_stops_the_job(dag_folder, small_inputs, sagemaker, backend, held_clock):
    """SIGTERM calls on_kill, which stops the job; the wait then ends at once (an hour-long poll interval would
    otherwise keep the process alive) and the task fails saying so."""
    name = unique("sigterm")
    held_clock.hold()
    env = {
        **os.environ,
        "GT_TEST_REQUEST": json.dumps(request(name, small_inputs, auto_labeling=False)),
        "GT_TEST_DEFERRABLE": "0",
        "GT_TEST_CHECK_INTERVAL": "3600",
    }
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import datetime, timezone
        from airflow.dag_processing.dagbag import DagBag
        dag = DagBag(dag_folder={str(dag_folder)!r}).get_dag("third_party_labeling")
        when = datetime(2026, 11, 2, tzinfo=timezone.utc)
        run = dag.test(logical_date=when, run_after=when)
        print("task state", run.get_task_instance("label").state, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert held_clock.holding.wait(120), "the job never started"
        [job] = jobs_named(sagemaker, name)
        assert job["LabelingJobStatus"] in ("Initializing", "InProgress")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)  # well before the next poll, an hour away
        thread = backend._threads[backend.get("us-east-1", name).arn]
        thread.join(120)
    finally:
        proc.kill()
        proc.wait(30)
    assert "task state failed" in output
    assert f"killed: labeling job {name} stopped" in output
    assert sagemaker.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "Stopped"
