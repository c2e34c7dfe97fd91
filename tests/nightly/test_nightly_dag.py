"""nightly_labeling_birds through `dag.test()` against the emulator: the model chain, idempotent shards, force_relabel,
empty shards, the budget guardrail, the asset event and the failure notification."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.nightly.conftest import DAG_ID, SHARD_SIZE, states, xcom

pytestmark = pytest.mark.slow

DAY_1, DAY_2, DAY_3 = (datetime(2026, 1, d, tzinfo=UTC) for d in (1, 2, 3))


@pytest.fixture
def sagemaker(boto_session, emulator):
    return boto_session.client("sagemaker", endpoint_url=emulator.url)


def all_jobs(sagemaker) -> list[dict]:
    jobs, kwargs = [], {"MaxResults": 100}
    while True:
        page = sagemaker.list_labeling_jobs(**kwargs)
        jobs += page["LabelingJobSummaryList"]
        if not page.get("NextToken"):
            return jobs
        kwargs["NextToken"] = page["NextToken"]


def chain_jobs(sagemaker, chain) -> list[dict]:
    """This chain's jobs (their output path is under the chain's prefix), oldest first, described."""
    found = []
    for job in all_jobs(sagemaker):
        description = sagemaker.describe_labeling_job(LabelingJobName=job["LabelingJobName"])
        if f"/{chain.prefix}/" in description["OutputConfig"]["S3OutputPath"]:
            found.append(description)
    return sorted(found, key=lambda d: d["CreationTime"])


def initial_model(description: dict) -> str | None:
    return (description.get("LabelingJobAlgorithmsConfig") or {}).get("InitialActiveLearningModelArn")


def final_model(description: dict) -> str | None:
    return (description.get("LabelingJobOutput") or {}).get("FinalActiveLearningModelArn")


def read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == f"{DAG_ID}.latest_model", AssetEvent.source_run_id == run_id)
        ).all()
        return [dict(row.extra or {}) for row in rows]


def test_three_nights_chain_the_model_and_reruns_add_no_job(chain, sagemaker, s3):
    runs = [chain.run(day) for day in (DAY_1, DAY_2, DAY_3)]
    for run in runs:
        assert set(states(run).values()) == {"success"}, states(run)

    jobs = chain_jobs(sagemaker, chain)
    assert len(jobs) == 3
    assert all(j["LabelingJobStatus"] == "Completed" for j in jobs)
    assert [j["LabelCounters"]["TotalLabeled"] for j in jobs] == [SHARD_SIZE] * 3
    # The chain: none → job 1's final model → job 2's final model.
    assert initial_model(jobs[0]) is None
    assert all(final_model(j) for j in jobs)
    assert initial_model(jobs[1]) == final_model(jobs[0])
    assert initial_model(jobs[2]) == final_model(jobs[1])
    # Three different shards: no image is labeled twice.
    manifests = [j["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] for j in jobs]
    refs = [s3.get_object(Bucket=chain.bucket, Key=m.split("/", 3)[3])["Body"].read().splitlines() for m in manifests]
    assert len({line for lines in refs for line in lines}) == 3 * SHARD_SIZE

    pointer = read_json(s3, chain.bucket, chain.key("models", "latest.json"))
    assert pointer["model_arn"] == final_model(jobs[2]) and pointer["job_name"] == jobs[2]["LabelingJobName"]
    assert pointer["previous_model_arn"] == final_model(jobs[1])
    # Every run emitted one asset event naming its model.
    for run, job in zip(runs, jobs, strict=True):
        assert [e["model_arn"] for e in asset_events(run.run_id)] == [final_model(job)]

    # Per-shard outputs: the labeled manifest at a stable place and a summary.
    shard = xcom(runs[1], "select_shard")
    summary = read_json(s3, chain.bucket, chain.key("shards", shard["key"], "summary.json"))
    assert summary["job"]["name"] == jobs[1]["LabelingJobName"] and summary["job"]["reused"] is False
    assert summary["initial_model_arn"] == final_model(jobs[0]) and summary["final_model_arn"] == final_model(jobs[1])
    labeled = s3.get_object(Bucket=chain.bucket, Key=chain.key("shards", shard["key"], "output.manifest"))
    assert len(labeled["Body"].read().splitlines()) == SHARD_SIZE

    # Night 3 again: the same run (a clear) and another run of the same day both reuse the job; no new job, no event.
    before = len(all_jobs(sagemaker))
    events_before = asset_events(runs[2].run_id)
    again = chain.run(DAY_3)
    other = chain.run(DAY_3.replace(hour=12))
    for run in (again, other):
        assert states(run)["label_shard"] == "success"
        assert xcom(run, "label_shard")["LabelingJobArn"] == jobs[2]["LabelingJobArn"]
        assert xcom(run, "build_request", "reuse")["LabelingJobName"] == jobs[2]["LabelingJobName"]
        assert states(run)["publish_model"] == "skipped"
    assert asset_events(again.run_id) == events_before and asset_events(other.run_id) == []
    assert other.run_id != again.run_id == runs[2].run_id
    assert len(all_jobs(sagemaker)) == before


def test_force_relabel_adds_exactly_one_job_and_later_runs_reuse_it(chain, sagemaker, s3):
    first = chain.run(DAY_1)
    [job] = chain_jobs(sagemaker, chain)

    forced = chain.run(DAY_1, force_relabel=True)
    assert set(states(forced).values()) == {"success"}, states(forced)
    jobs = chain_jobs(sagemaker, chain)
    assert len(jobs) == 2 and jobs[0]["LabelingJobArn"] == job["LabelingJobArn"]
    fresh = jobs[1]
    assert fresh["LabelingJobName"] != job["LabelingJobName"] and "relabel" in fresh["LabelingJobName"]
    # It starts from the chain's latest model (the first job's) and its own final model becomes the latest.
    assert initial_model(fresh) == final_model(job)
    pointer = read_json(s3, chain.bucket, chain.key("models", "latest.json"))
    assert pointer["model_arn"] == final_model(fresh)
    shard = xcom(first, "select_shard")["key"]
    summary = read_json(s3, chain.bucket, chain.key("shards", shard, "summary.json"))
    assert summary["job"]["name"] == fresh["LabelingJobName"] and summary["job"]["forced"] is True

    # Without the flag, another run of the night reuses the shard's current job: the relabeled one.
    later = chain.run(DAY_1.replace(hour=6))
    assert xcom(later, "label_shard")["LabelingJobArn"] == fresh["LabelingJobArn"]
    assert len(chain_jobs(sagemaker, chain)) == 2


def test_night_past_the_end_of_the_class_is_skipped_not_failed(chain, sagemaker):
    before = len(all_jobs(sagemaker))
    run = chain.run(datetime(2026, 3, 1, tzinfo=UTC))  # shard 59; the mirror holds five 30-image shards
    got = states(run)
    assert got["select_shard"] == "skipped"
    assert {got[t] for t in ("copy_images", "write_inputs", "build_request", "label_shard", "publish_model")} == {
        "skipped"
    }
    assert got["read_latest_model"] == "success"  # the chain step still runs, so the next night is not held up
    assert run.state == "success"
    assert len(all_jobs(sagemaker)) == before


@pytest.fixture
def incoming_chain(chain, monkeypatch, s3):
    """The same DAG fed by a date-partitioned incoming prefix instead of Open Images."""
    from tests.nightly.conftest import Chain, write_test_include

    uri = f"s3://{chain.bucket}/{chain.prefix}/incoming/dt={{{{ ds }}}}/"
    include = write_test_include(chain.include, prefix=chain.prefix, shards={"kind": "s3_prefix", "uri": uri})
    return Chain(include)


def test_incoming_prefix_labels_the_days_images_and_an_empty_day_skips(incoming_chain, sagemaker, s3, nightly_mirror):
    chain = incoming_chain
    if chain.bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=chain.bucket)
    small = [
        o["Key"] for o in s3.list_objects_v2(Bucket=nightly_mirror, Prefix="test/")["Contents"] if o["Size"] < 2**20
    ]
    landed = []
    for key in small[:20]:
        dest = f"{chain.prefix}/incoming/dt=2026-02-10/{key.rsplit('/', 1)[1]}"
        s3.copy_object(Bucket=chain.bucket, Key=dest, CopySource={"Bucket": nightly_mirror, "Key": key})
        landed.append(f"s3://{chain.bucket}/{dest}")
    s3.put_object(Bucket=chain.bucket, Key=f"{chain.prefix}/incoming/dt=2026-02-10/_SUCCESS", Body=b"")
    s3.put_object(Bucket=chain.bucket, Key=f"{chain.prefix}/incoming/dt=2026-02-09/early.jpg", Body=b"not that day")

    run = chain.run(datetime(2026, 2, 10, tzinfo=UTC))
    assert set(states(run).values()) == {"success"}, states(run)
    [job] = chain_jobs(sagemaker, chain)
    assert job["LabelingJobStatus"] == "Completed"
    manifest = job["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"]
    lines = s3.get_object(Bucket=chain.bucket, Key=manifest.split("/", 3)[3])["Body"].read().splitlines()
    assert sorted(json.loads(line)["source-ref"] for line in lines) == sorted(landed)  # labeled in place, that day's
    assert xcom(run, "select_shard")["key"].startswith("dt-2026-02-10-")

    empty = chain.run(datetime(2026, 2, 11, tzinfo=UTC))
    assert states(empty)["select_shard"] == "skipped" and states(empty)["label_shard"] == "skipped"
    assert len(chain_jobs(sagemaker, chain)) == 1


@pytest.fixture
def failure_topic(boto_session, emulator):
    """An SNS topic with an SQS queue subscribed to it, both served by the emulator (moto)."""
    sns = boto_session.client("sns", endpoint_url=emulator.url)
    sqs = boto_session.client("sqs", endpoint_url=emulator.url)
    topic = sns.create_topic(Name="nightly-failures")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"nightly-failures-{datetime.now(UTC):%H%M%S%f}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, sqs, queue


def test_over_budget_stops_before_any_job_and_publishes_the_failure(chain, sagemaker, s3, failure_topic):
    topic, sqs, queue = failure_topic
    before = len(all_jobs(sagemaker))
    run = chain.run(DAY_2, budget_usd=1.5, notify_sns_topic_arn=topic)

    got = states(run)
    assert run.state == "failed"
    assert got["check_budget"] == "failed" and got["label_shard"] == "upstream_failed"
    assert got["publish_model"] == "skipped"  # so the next night's chain step is not held up
    assert len(all_jobs(sagemaker)) == before
    plan = xcom(run, "build_request", "estimate")
    assert plan["worst_case_usd"] == pytest.approx(SHARD_SIZE * (0.08 + 3 * 0.036))

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    assert len(messages) == 1
    envelope = json.loads(messages[0]["Body"])
    shard = xcom(run, "select_shard")["key"]
    assert envelope["Subject"] == f"[Airflow] {DAG_ID}.check_budget failed"
    text = envelope["Message"]
    assert "exceeds the budget $1.50" in text and f"shard {shard}" in text and "No labeling job was created" in text
    assert run.run_id in text
    assert "testing" not in text  # the emulator's access key and secret
