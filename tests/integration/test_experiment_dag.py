"""labeling_experiment_birds end to end through `dag.test()` against the emulator and its Open Images mirror."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

DAG_ID = "labeling_experiment_birds"


@pytest.fixture
def birds_dag(airflow_db, mirror, monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("GT_LOCAL_REPORTS_DIR", str(tmp_path / "reports"))
    from tests.conftest import DAGS_HOME

    bag = DagBag(dag_folder=str(DAGS_HOME))
    assert not bag.import_errors
    return bag.get_dag(DAG_ID)


def run(dag, when: datetime, conf: dict):
    return dag.test(logical_date=when, run_after=when, run_conf=conf)


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def xcom(dagrun, task_id: str):
    return dagrun.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def test_small_run_then_rerun_copies_nothing_and_creates_no_job(birds_dag, boto_session, emulator, tmp_path, s3):
    when = datetime(2026, 10, 1, tzinfo=UTC)
    conf = {"images": 40, "auto_labeling": False, "bucket": "gt-dag-test"}
    first = run(birds_dag, when, conf)
    assert set(states(first).values()) == {"success"}, states(first)

    selection = xcom(first, "select_images")
    assert selection["images"] == 40
    assert xcom(first, "copy_images")["copied"] == 40
    jobs = [xcom(first, f"label_iteration_{i}") for i in (1, 2, 3)]
    assert [j["LabelCounters"]["TotalLabeled"] for j in jobs] == [20, 20, 20]
    assert len({j["LabelingJobArn"] for j in jobs}) == 3

    report_out = xcom(first, "render_report")
    local = Path(report_out["local_report"])
    report = json.loads(local.with_name("report.json").read_text())
    assert [j["key"] for j in report["jobs"]] == ["iteration-1", "iteration-2", "iteration-3"]
    assert report["dag_id"] == DAG_ID and report["run_id"] == first.run_id
    link = first.get_task_instance("render_report").xcom_pull(
        task_ids="render_report", key="groundtruth_experiment_report"
    )
    assert link["object_key"].endswith("/report/report.html")
    # on a local endpoint the link is a presigned URL: a browser without credentials can open it
    assert link["presigned_url"].startswith(f"{emulator.url}/") and "X-Amz-Signature=" in link["presigned_url"]
    with urllib.request.urlopen(link["presigned_url"], timeout=10) as opened:
        assert opened.read().startswith(b"<!DOCTYPE html>")
    bucket, key = report_out["report_uri"][5:].split("/", 1)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"<!DOCTYPE html>")

    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    before = sagemaker.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]
    again = run(birds_dag, when, conf)  # clear everything on the same run and run it again
    assert again.run_id == first.run_id and set(states(again).values()) == {"success"}
    copied = xcom(again, "copy_images")
    assert (copied["copied"], copied["skipped_existing"]) == (0, 40)
    after = sagemaker.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]
    assert len(after) == len(before)
    assert [xcom(again, f"label_iteration_{i}")["LabelingJobArn"] for i in (1, 2, 3)] == [
        j["LabelingJobArn"] for j in jobs
    ]


def test_an_experiment_without_iteration_1s_model_is_refused_before_any_job(birds_dag, boto_session, emulator):
    """300 images with auto-labeling: iteration 1 would get 150 objects, too few to train the model iteration 2
    needs. The first task refuses the run, once (no retries), and no labeling job is created."""
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    before = len(sagemaker.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"])
    dagrun = run(birds_dag, datetime(2026, 10, 2, tzinfo=UTC), {"images": 300, "bucket": "gt-dag-refused"})
    got = states(dagrun)
    assert got["select_images"] == "failed", got
    assert dagrun.get_task_instance("select_images").try_number == 1  # deterministic: not retried
    assert all(got[f"label_iteration_{i}"] != "success" for i in (1, 2, 3)), got
    assert len(sagemaker.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]) == before
