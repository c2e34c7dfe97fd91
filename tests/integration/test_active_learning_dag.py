"""active_learning_news (BlazingText) and active_learning_news_custom (script mode) end to end through `dag.test()`
against the emulator: the seed's loop on small synthetic corpora whose truth the emulator knows."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.sim.textcorpus import HeadlineStyle, seed_text

BUCKET = "gt-al-tests"
# Fewer crossover, vague and rare-name headlines than the default: a corpus a model learns from a few hundred labels.
LEARNABLE = HeadlineStyle(ambiguous=0.1, vague=0.1, rare=0.15)


@pytest.fixture
def bag(airflow_db, monkeypatch, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import DAGS_HOME

    monkeypatch.setenv("GT_LOCAL_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("GT_CHECK_INTERVAL_SECONDS", "0.5")  # the emulator's jobs take seconds, not hours
    bag = DagBag(dag_folder=str(DAGS_HOME))
    assert not bag.import_errors, bag.import_errors
    return bag


def corpus(emulator, name: str, articles: int, labeled_share: float, seed: int, style=LEARNABLE) -> dict:
    seeded = seed_text(
        emulator.url, BUCKET, f"corpus/{name}", articles=articles, labeled_share=labeled_share, seed=seed, style=style
    )
    return {
        "input_manifest": seeded["manifest"],
        "label_categories": seeded["label_categories"],
        "output_prefix": f"s3://{BUCKET}/runs/{name}/",
    }


def run(dag, when: datetime, conf: dict):
    return dag.test(logical_date=when, run_after=when, run_conf=conf)


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def xcom(dagrun, task_id: str, key: str = "return_value"):
    return dagrun.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)


def read(s3, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def job_names(sagemaker) -> dict[str, set[str]]:
    return {
        "labeling": {
            j["LabelingJobName"] for j in sagemaker.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]
        },
        "training": {
            j["TrainingJobName"] for j in sagemaker.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
        },
        "transform": {
            j["TransformJobName"] for j in sagemaker.list_transform_jobs(MaxResults=100)["TransformJobSummaries"]
        },
    }


def manifests(s3, prefix_uri: str) -> dict[str, bytes]:
    bucket, prefix = prefix_uri[5:].split("/", 1)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if o["Key"].endswith(".manifest")
    ]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def test_blazingtext_loop_labels_every_line_once_and_a_rerun_reattaches(bag, emulator, boto_session, s3):
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    dag = bag.get_dag("active_learning_news")
    conf = corpus(emulator, "bt", articles=2000, labeled_share=0.2, seed=21)
    when = datetime(2026, 11, 1, tzinfo=UTC)
    first = run(dag, when, conf)
    got = states(first)
    assert got["export"] == "success" and got["report"] == "success", got
    assert got["bootstrap.label"] == "skipped"  # 20% human-labeled already
    assert got["round_1.train"] == "success"
    assert not {k: v for k, v in got.items() if v not in ("success", "skipped")}, got

    exported = xcom(first, "export")
    lines = [json.loads(x) for x in read(s3, exported["FinalManifestS3Uri"]).splitlines()]
    assert [r["id"] for r in lines] == list(range(2000))
    source = [json.loads(x)["source"] for x in read(s3, conf["input_manifest"]).splitlines()]
    assert [r["source"] for r in lines] == source
    assert all(
        isinstance(r["category"], int) and r["category-metadata"]["human-annotated"] in ("yes", "no") for r in lines
    )
    assert exported["TrainedModelArn"].startswith("arn:aws:sagemaker:us-east-1:")

    report = json.loads(Path(xcom(first, "report")["local_report"]).with_name("report.json").read_text())
    totals = report["totals"]
    assert totals["objects"] == 2000 and totals["unlabeled"] == 0
    assert totals["human_labeled"] + totals["auto_labeled"] == 2000
    assert totals["auto_labeled"] == sum(1 for r in lines if r["category-metadata"]["human-annotated"] == "no")
    assert totals["auto_label_accuracy"] is not None and totals["cost_usd"] > 0
    rounds_run = [r for r in report["rounds"]]
    assert rounds_run and all(r["threshold"] == 0.5 for r in rounds_run)
    skipped_rounds = [n for n in range(1, 9) if got[f"round_{n}.plan"] == "skipped"]
    assert skipped_rounds == list(range(len(rounds_run) + 1, 9))

    jobs, written = job_names(sagemaker), manifests(s3, conf["output_prefix"])
    again = run(dag, when, conf)  # every task cleared and run again: each job reattaches
    assert states(again)["export"] == "success"
    assert job_names(sagemaker) == jobs
    assert manifests(s3, conf["output_prefix"]) == written


def test_a_corpus_already_fully_labeled_exports_at_once(bag, emulator, boto_session, s3):
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    before = job_names(sagemaker)
    conf = corpus(emulator, "full", articles=80, labeled_share=1.0, seed=23)
    dagrun = run(bag.get_dag("active_learning_news"), datetime(2026, 11, 3, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["export"] == "success" and got["report"] == "success", got
    assert {got[f"round_{n}.plan"] for n in range(1, 9)} == {"skipped"}
    assert got["bootstrap.label"] == "skipped"
    assert job_names(sagemaker) == before  # nothing was paid for
    exported = xcom(dagrun, "export")
    assert exported["counts"] == {"total": 80, "human_labeled": 80, "auto_labeled": 0, "unlabeled": 0}
    assert exported["TrainedModelArn"] is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [(b"{not json", "line 3: not JSON"), (b'{"text": "no source here"}', 'line 3: needs a string "source"')],
    ids=["not-json", "no-source"],
)
def test_a_bad_manifest_line_fails_prepare_naming_the_line_before_any_job(
    bag, emulator, boto_session, s3, line, problem
):
    from groundtruth import active_learning_loop as loop
    from groundtruth.config import load_active_learning
    from groundtruth.manifests import ManifestError

    from tests.conftest import REPO

    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    conf = corpus(emulator, f"bad-{len(line)}", articles=10, labeled_share=0.2, seed=24)
    bucket, key = conf["input_manifest"][5:].split("/", 1)
    good = s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join([*good[:2], line, *good[2:]]) + b"\n")
    before = job_names(sagemaker)

    dagrun = run(bag.get_dag("active_learning_news"), datetime(2026, 11, 4, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["prepare"] == "failed" and dagrun.get_task_instance("prepare").try_number == 1, got
    assert got["export"] == "upstream_failed" and job_names(sagemaker) == before

    config = load_active_learning(REPO / "include" / "active_learning" / "news.yaml").model_copy(update=conf)
    with pytest.raises(ManifestError) as error:
        loop.prepare(s3, config, loop.run_layout(config, "manual__x"), None, REPO / "include")
    assert f"{conf['input_manifest']} {problem}" in str(error.value)


def test_a_bad_param_is_refused_naming_it(bag):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(bag.get_dag("active_learning_news").params)
    with pytest.raises(ParamValidationError, match="param auto_label_margin: 1.5 is greater than or equal to"):
        params.update({"auto_label_margin": 1.5})
