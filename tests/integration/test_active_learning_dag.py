"""active_learning_news (BlazingText) and active_learning_news_custom (script mode) end to end through `dag.test()`
against the emulator: the seed's loop on small synthetic corpora whose truth the emulator knows."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.sim.textcorpus import STYLES, HeadlineStyle, seed_text

BUCKET = "gt-al-tests"
# Fewer crossover, vague and rare-name headlines than the default: a corpus a model learns from a few hundred labels.
LEARNABLE = STYLES["clear"]


@pytest.fixture(autouse=True)
def quick_dag_test(monkeypatch):
    """`dag.test()` sleeps a second whenever no task is ready (a failure moves one level of a 70-task chain per
    loop); let its loop (only its: the caller is checked) look again every 50 ms. Nothing else about the run changes."""
    import sys
    import time

    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        caller = sys._getframe(1).f_code.co_filename
        real_sleep(min(seconds, 0.05) if caller.endswith("airflow/sdk/definitions/dag.py") else seconds)

    monkeypatch.setattr(time, "sleep", sleep)


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


def asset_events(name: str, run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == name, AssetEvent.source_run_id == run_id)
        ).all()
        return [dict(row.extra or {}) for row in rows]


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
    # batches of 20%: at most 4 rounds (the seed's 10% runs in the round-3 test); 2,000 headlines teach the model enough
    # to auto-label some of them
    conf = {**corpus(emulator, "bt", articles=2000, labeled_share=0.2, seed=21), "human_batch_share": 0.2}
    when = datetime(2026, 11, 1, tzinfo=UTC)
    first = run(dag, when, conf)
    got = states(first)
    assert got["export"] == "success" and got["report"] == "success", got
    assert got["bootstrap.label"] == "skipped"  # 20% human-labeled already
    assert got["round_1.train"] == "success"
    assert not {k: v for k, v in got.items() if v not in ("success", "skipped")}, got

    exported = xcom(first, "export")
    assert asset_events("active_learning_news.final_manifest", first.run_id) == [
        {"manifest": exported["FinalManifestS3Uri"], "run_id": first.run_id}
    ]
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
    # the first round not needed decided so (its plan succeeded) and skipped itself and every later round at once
    ran = [n for n in range(1, 9) if got[f"round_{n}.train"] == "success"]
    assert ran == list(range(1, len(rounds_run) + 1)) and len(ran) <= 4
    later = {v for k, v in got.items() if k.startswith("round_") and int(k[6:].split(".")[0]) > len(ran)}
    assert len(ran) == 8 or (got[f"round_{len(ran) + 1}.plan"] == "success" and later == {"success", "skipped"})

    jobs, written = job_names(sagemaker), manifests(s3, conf["output_prefix"])
    again = run(dag, when, conf)  # every task cleared and run again: each job reattaches
    assert states(again)["export"] == "success"
    assert job_names(sagemaker) == jobs
    assert manifests(s3, conf["output_prefix"]) == written


def test_our_own_model_labels_a_clear_corpus_in_the_seed_shares_with_accurate_auto_labels(bag, emulator, s3):
    """Part 2 of the seed at the demo's setting (the clear corpus, 20% labeled, the seed's shares and margin), on
    4,000 headlines: every line labeled once, 35-65% auto-labeled, and the auto-labels >= 95% right by the emulator's
    truth. The figures come out of the script's real training and the workforce's real answers."""
    conf = corpus(emulator, "own-model", articles=4000, labeled_share=0.2, seed=26)
    dagrun = run(bag.get_dag("active_learning_news_custom"), datetime(2026, 11, 2, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["export"] == "success" and got["report"] == "success", got
    exported = xcom(dagrun, "export")
    lines = [json.loads(x) for x in read(s3, exported["FinalManifestS3Uri"]).splitlines()]
    assert [r["id"] for r in lines] == list(range(4000)) and all(isinstance(r["category"], int) for r in lines)
    totals = json.loads(Path(xcom(dagrun, "report")["local_report"]).with_name("report.json").read_text())["totals"]
    print(f"own model: {totals['auto_labeled_pct']}% auto-labeled at {totals['auto_label_accuracy']} accuracy")
    assert totals["unlabeled"] == 0 and totals["human_labeled"] + totals["auto_labeled"] == 4000
    assert 35 <= totals["auto_labeled_pct"] <= 65, totals
    assert totals["auto_label_accuracy"] >= 0.95, totals


def test_a_corpus_already_fully_labeled_exports_at_once(bag, emulator, boto_session, s3):
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    before = job_names(sagemaker)
    conf = corpus(emulator, "full", articles=80, labeled_share=1.0, seed=23)
    dagrun = run(bag.get_dag("active_learning_news"), datetime(2026, 11, 3, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["export"] == "success" and got["report"] == "success", got
    assert got["round_1.plan"] == "success"  # it found nothing to label and skipped every round
    assert {v for k, v in got.items() if k.startswith("round_") and k != "round_1.plan"} == {"skipped"}
    assert got["bootstrap.label"] == "skipped"
    assert job_names(sagemaker) == before  # nothing was paid for
    exported = xcom(dagrun, "export")
    assert exported["counts"] == {"total": 80, "human_labeled": 80, "auto_labeled": 0, "unlabeled": 0}
    assert exported["TrainedModelArn"] is None


def bad_corpus(emulator, s3, line: bytes) -> dict:
    """A 10-line corpus with `line` inserted as line 3."""
    conf = corpus(emulator, f"bad-{hashlib.sha256(line).hexdigest()[:8]}", articles=10, labeled_share=0.2, seed=24)
    bucket, key = conf["input_manifest"][5:].split("/", 1)
    good = s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    s3.put_object(Bucket=bucket, Key=key, Body=b"\n".join([*good[:2], line, *good[2:]]) + b"\n")
    return conf


def test_a_bad_manifest_line_fails_prepare_once_before_any_job(bag, emulator, boto_session, s3):
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    conf = bad_corpus(emulator, s3, b"{not json")
    before = job_names(sagemaker)
    dagrun = run(bag.get_dag("active_learning_news"), datetime(2026, 11, 4, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["prepare"] == "failed" and dagrun.get_task_instance("prepare").try_number == 1, got
    assert got["export"] == "upstream_failed" and job_names(sagemaker) == before


@pytest.mark.parametrize(
    ("line", "problem"),
    [(b"{not json", "line 3: not JSON"), (b'{"text": "no source here"}', 'line 3: needs a string "source"')],
    ids=["not-json", "no-source"],
)
def test_the_copy_step_names_the_bad_line(emulator, s3, line, problem):
    from groundtruth import active_learning_loop as loop
    from groundtruth.config import load_active_learning
    from groundtruth.manifests import ManifestError
    from tests.conftest import REPO

    conf = bad_corpus(emulator, s3, line)
    config = load_active_learning(REPO / "include" / "active_learning" / "news.yaml").model_copy(update=conf)
    with pytest.raises(ManifestError) as error:
        loop.prepare(s3, config, loop.run_layout(config, "manual__x"), None, REPO / "include")
    assert f"{conf['input_manifest']} {problem}" in str(error.value)


def test_a_round_over_budget_is_refused_before_its_training_job(bag, emulator, boto_session, s3):
    """A $50 budget: round 1's training (5 days on ml.c5.2xlarge at most) and transform worst cases do not fit."""
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    before = job_names(sagemaker)
    conf = {**corpus(emulator, "budget", articles=40, labeled_share=0.2, seed=26), "budget_usd": 50}
    dagrun = run(bag.get_dag("active_learning_news"), datetime(2026, 11, 6, tzinfo=UTC), conf)
    got = states(dagrun)
    assert got["prepare"] == "success" and got["round_1.plan"] == "failed", got
    assert dagrun.get_task_instance("round_1.plan").try_number == 1  # the same numbers fail the same way
    assert job_names(sagemaker) == before


def test_a_bad_param_is_refused_naming_it(bag):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(bag.get_dag("active_learning_news").params)
    with pytest.raises(ParamValidationError, match=r"param auto_label_margin: 1\.5 is greater than or equal to"):
        params.update({"auto_label_margin": 1.5})


def build_with(config_file: str, **changes):
    """The DAG the factory builds from a shipped config with `changes` (fields no Param reaches)."""
    import importlib.util

    from groundtruth.config import load_active_learning
    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location(
        "active_learning_dags_under_test", REPO / "dags" / "active_learning.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = load_active_learning(REPO / "include" / "active_learning" / config_file)
    return module.build_dag(config.model_copy(update=changes))


def test_a_training_job_failing_in_round_3_fails_that_task_and_only_a_restart_config_starts_another(
    bag, emulator, boto_session, s3
):
    from emulator.faults import FaultConfig
    from groundtruth.requests import labeling_job_name

    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    conf = corpus(emulator, "fail3", articles=100, labeled_share=0.2, seed=25, style=HeadlineStyle())
    when = datetime(2026, 11, 5, tzinfo=UTC)
    dag = bag.get_dag("active_learning_news")
    name = labeling_job_name(dag.dag_id, f"manual__{when.isoformat()}", "round_3.train", 3)
    emulator.app.faults.configure(FaultConfig(fail_training_job_name_contains=name, fail_training_job_at="training"))
    try:
        first = run(dag, when, conf)
        got = states(first)
        assert got["round_2.merge"] == "success" and got["round_3.train"] == "failed", got
        assert first.get_task_instance("round_3.train").try_number == 1  # a failed job is not retried
        assert got["export"] == "upstream_failed" and got["round_4.plan"] == "upstream_failed"
        job = sagemaker.describe_training_job(TrainingJobName=name)
        assert job["TrainingJobStatus"] == "Failed" and job["FailureReason"]
        trained = job_names(sagemaker)["training"]
        assert {n for n in trained if "round-3-train" in n and n.startswith(name)} == {name}  # no fresh attempt

        # With restart_failed_jobs the re-run starts a fresh attempt (which the fault, matching the name, fails too;
        # without retries, so the test does not wait out the retry delay for an -a2).
        restarted = run(build_with("news.yaml", restart_failed_jobs=True, retries=0), when, conf)
        assert states(restarted)["round_3.train"] == "failed"
        assert job_names(sagemaker)["training"] - trained == {f"{name}-a1"}
    finally:
        emulator.app.faults.configure(FaultConfig())
