"""The families' teardown sweep (`groundtruth.ownership.stop_orphaned_jobs`) against the emulator on a real-time
clock, where jobs stay running: it stops exactly the running jobs its own run's tasks created, of every kind."""

from __future__ import annotations

import json

import boto3
import pytest

from emulator.sim.openimages import generate_images
from groundtruth.hooks import SageMakerJobHook
from groundtruth.ownership import TAG_DAG_ID, TAG_RUN_ID, TAG_TASK_ID, stop_orphaned_jobs, tag_value
from scripts.airflow_processes import aws_conn_uri
from tests.emulator.helpers import request, unique
from tests.emulator.training_helpers import script_job

BUCKET = "gt-orphan-sweep"
RUN = "manual__2026-12-04T10:00:00+00:00"


@pytest.fixture(scope="module")
def slow_emulator():
    """An emulator whose jobs take as long as they would on AWS (time scale 1): nothing ends during the test."""
    from emulator.app import build_app
    from emulator.server import EmulatorServer

    with EmulatorServer("127.0.0.1", 0, build_app(time_scale=1.0)) as server:
        yield server


def tags(dag_id: str, run_id: str, task_id: str) -> list[dict[str, str]]:
    values = {TAG_DAG_ID: dag_id, TAG_RUN_ID: run_id, TAG_TASK_ID: task_id}
    return [{"Key": k, "Value": tag_value(v)} for k, v in values.items()]


def test_the_sweep_stops_its_runs_running_jobs_and_nothing_else(slow_emulator, monkeypatch):
    url = slow_emulator.url
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    s3, sagemaker = session.client("s3", endpoint_url=url), session.client("sagemaker", endpoint_url=url)
    s3.create_bucket(Bucket=BUCKET)
    lines = []
    for number, image in enumerate(generate_images(4, seed=5)):
        s3.put_object(Bucket=BUCKET, Key=f"images/{number}.jpg", Body=image.jpeg)
        lines.append(json.dumps({"source-ref": f"s3://{BUCKET}/images/{number}.jpg"}))
    s3.put_object(Bucket=BUCKET, Key="input.manifest", Body="\n".join(lines) + "\n")
    s3.put_object(Bucket=BUCKET, Key="labels.json", Body=json.dumps({"labels": [{"label": "Bird"}]}))
    s3.put_object(Bucket=BUCKET, Key="ui.template", Body="<crowd-form></crowd-form>")
    uris = {
        "manifest": f"s3://{BUCKET}/input.manifest",
        "labels": f"s3://{BUCKET}/labels.json",
        "template": f"s3://{BUCKET}/ui.template",
        "output": f"s3://{BUCKET}/output/",
    }

    def labeling(dag_id: str, run_id: str) -> str:
        name = unique("sweep")
        sagemaker.create_labeling_job(**request(name, uris, auto_labeling=False, Tags=tags(dag_id, run_id, "label")))
        return name

    ours = labeling("dag_a", RUN)
    other_run, other_dag = labeling("dag_a", "manual__another"), labeling("dag_b", RUN)
    untagged = unique("sweep")
    sagemaker.create_labeling_job(**request(untagged, uris, auto_labeling=False))
    training = unique("sweep")
    sagemaker.create_training_job(
        **script_job(training, f"s3://{BUCKET}/code.tar.gz", {"train": f"s3://{BUCKET}/images/"}, f"s3://{BUCKET}/m/"),
        Tags=tags("dag_a", RUN, "round_1.train"),
    )
    labeling_status = {n: sagemaker.describe_labeling_job(LabelingJobName=n)["LabelingJobStatus"] for n in [ours]}
    assert labeling_status == {ours: "Initializing"}  # running, though not yet InProgress: swept all the same

    monkeypatch.setenv("AIRFLOW_CONN_SWEEP", aws_conn_uri(url))
    hook = SageMakerJobHook(aws_conn_id="sweep", region_name="us-east-1")
    said: list[str] = []
    stopped = stop_orphaned_jobs(hook, "dag_a", RUN, lambda msg, *args: said.append(msg % args))

    assert sorted(stopped) == sorted([ours, training])
    assert sagemaker.describe_training_job(TrainingJobName=training)["TrainingJobStatus"] in ("Stopping", "Stopped")
    status = {n: sagemaker.describe_labeling_job(LabelingJobName=n)["LabelingJobStatus"] for n in
              (ours, other_run, other_dag, untagged)}  # fmt: skip
    assert status[ours] in ("Stopping", "Stopped")
    assert {n: s for n, s in status.items() if n != ours} == dict.fromkeys(
        (other_run, other_dag, untagged), "Initializing"
    )
    assert any(f"Training job {training} of task round_1.train is still running" in line for line in said), said
    # a second sweep finds nothing left to stop: the jobs it stopped are Stopping or Stopped, not running
    assert stop_orphaned_jobs(hook, "dag_a", RUN, said.append) == []
    for name in (other_run, other_dag, untagged):
        sagemaker.stop_labeling_job(LabelingJobName=name)
