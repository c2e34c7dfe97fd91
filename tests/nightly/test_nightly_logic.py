"""The nightly chain's pure logic and its config: shards, names, budget, the pointer, redaction — no AWS."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from groundtruth.config import ConfigError, load_nightly, with_params
from groundtruth.nightly import (
    ChainLayout,
    failure_notice,
    publish_decision,
    redact,
    render_day,
    shard_day,
    shard_for,
    shard_job_name,
    shard_slice,
)
from groundtruth.pricing import budget_problem, worst_case_cost
from groundtruth.requests import JOB_NAME_PATTERN, MAX_JOB_NAME_LENGTH
from tests.nightly.conftest import BIRDS, DAG_ID

CONFIG = load_nightly(BIRDS)
CHAIN = ChainLayout.of(CONFIG).chain_uri


def write(tmp_path: Path, name: str = "birds", **changes) -> Path:
    data = yaml.safe_load(BIRDS.read_text())
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- config ------------------------------------------------------------------------------------------------------
def test_birds_nightly_defaults_can_feed_the_model_chain():
    assert CONFIG.shards.kind == "openimages" and CONFIG.shards.class_id == "/m/015p6"
    assert CONFIG.shards.images_per_shard >= 1250  # auto-labeling's minimum: every shard can produce a model
    assert CONFIG.auto_labeling and CONFIG.catchup is False and CONFIG.max_active_runs == 1
    estimate = worst_case_cost(CONFIG.shards.images_per_shard, _request(), CONFIG.service_fee_usd)
    assert estimate["worst_case_usd"] <= CONFIG.budget_usd  # the defaults run


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": "every night"}, "schedule"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"shards__kind": "ftp"}, "shards"),
        ({"shards__images_per_shard": 0}, "shards.openimages.images_per_shard"),
        ({"seed_model_arn": "my-model"}, "seed_model_arn"),
        ({"notify__sns_topic_arn": "topic"}, "notify.sns_topic_arn"),
        ({"budget_usd": None}, "budget_usd"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_nightly_field_is_named_with_the_file(tmp_path, change, field):
    path = write(tmp_path, **change)
    with pytest.raises(ConfigError) as err:
        load_nightly(path)
    assert str(path) in str(err.value) and f"'{field}" in str(err.value), err.value


def test_incoming_prefix_must_carry_the_day(tmp_path):
    path = write(tmp_path, shards={"kind": "s3_prefix", "uri": "s3://gt-nightly-birds/incoming/"})
    with pytest.raises(ConfigError, match=r"shards\.s3_prefix\.uri.*\{\{ ds \}\}"):
        load_nightly(path)


def test_params_override_the_run_but_not_the_chain():
    changed = with_params(CONFIG, {"budget_usd": 5, "price_usd": "0.012", "seed_model_arn": "", "force_relabel": True})
    assert changed.budget_usd == 5 and str(changed.workforce.price_usd) == "0.012" and changed.seed_model_arn is None
    assert (changed.bucket, changed.prefix, changed.shards) == (CONFIG.bucket, CONFIG.prefix, CONFIG.shards)
    with pytest.raises(ConfigError, match="param 'workers_per_object'"):
        with_params(CONFIG, {"workers_per_object": 12})


# -- shards ------------------------------------------------------------------------------------------------------
def test_shard_day_is_the_logical_date_in_the_chains_time_zone():
    late = datetime(2026, 1, 2, 23, 30, tzinfo=UTC)
    assert shard_day(late, None, "UTC") == date(2026, 1, 2)
    assert shard_day(late, None, "Europe/Berlin") == date(2026, 1, 3)
    assert shard_day(None, datetime(2026, 1, 5, tzinfo=UTC), "UTC") == date(2026, 1, 5)


def test_openimages_shards_are_consecutive_slices_counted_from_the_start_date():
    start = CONFIG.start_date
    first, third = shard_for(CONFIG, start), shard_for(CONFIG, date(start.year, start.month, start.day + 2))
    assert (first.index, third.index) == (0, 2)
    assert shard_slice(2, 1250) == (2500, 3750)
    assert shard_for(CONFIG, start) == first  # deterministic
    resized = CONFIG.model_copy(update={"shards": CONFIG.shards.model_copy(update={"images_per_shard": 40})})
    assert shard_for(resized, start).key != first.key  # other images, another shard: never a reused job
    before = shard_for(CONFIG, date(2025, 12, 31))
    assert before.index == -1 and before.key.startswith("before-start-")
    with pytest.raises(ValueError, match="index"):
        shard_slice(-1, 10)


def test_incoming_uri_takes_the_day_and_nothing_else():
    template = "s3://b/incoming/dt={{ ds }}/{{ ds_nodash }}/{{ run_id }}/"
    assert render_day(template, date(2026, 2, 10)) == "s3://b/incoming/dt=2026-02-10/20260210/{{ run_id }}/"


def test_job_names_belong_to_the_shard_not_the_run():
    shard = shard_for(CONFIG, CONFIG.start_date)
    name = shard_job_name(DAG_ID, CHAIN, shard)
    assert name == shard_job_name(DAG_ID, CHAIN, shard)
    relabel = shard_job_name(DAG_ID, CHAIN, shard, relabel_run_id="manual__1")
    assert relabel == shard_job_name(DAG_ID, CHAIN, shard, relabel_run_id="manual__1")  # its retries reattach
    assert len({name, relabel, shard_job_name(DAG_ID, CHAIN, shard, relabel_run_id="manual__2")}) == 3
    assert shard_job_name(DAG_ID, "s3://other/chain", shard) != name  # another chain, other jobs
    for candidate in (name, relabel):
        assert JOB_NAME_PATTERN.fullmatch(candidate) and len(candidate) <= MAX_JOB_NAME_LENGTH - len("-a999")
    assert name.startswith("nightly-labeling-birds-label-k0-")


# -- budget --------------------------------------------------------------------------------------------------------
def _request(**htc) -> dict:
    return {
        "HumanTaskConfig": {
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default",
            "NumberOfHumanWorkersPerDataObject": 3,
            "PublicWorkforceTaskPrice": {"AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}},
            **htc,
        }
    }


def test_worst_case_is_every_object_labeled_by_every_worker():
    estimate = worst_case_cost(1250, _request(), 0.08)
    assert estimate["worst_case_usd"] == pytest.approx(1250 * (0.08 + 3 * 0.036))
    private = _request(WorkteamArn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/birders")
    assert worst_case_cost(1250, private, 0.08)["worst_case_usd"] == pytest.approx(100.0)  # the fee only


def test_over_budget_message_names_estimate_budget_and_shard():
    estimate = worst_case_cost(1250, _request(), 0.08)
    assert budget_problem(estimate, 235.0, f"{DAG_ID}, shard k00002-abc") is None  # exactly at the budget fits
    message = budget_problem(estimate, 100, f"{DAG_ID}, shard k00002-abc")
    assert "$235.00" in message and "$100.00" in message and "shard k00002-abc" in message
    assert "No labeling job was created" in message


# -- the pointer ---------------------------------------------------------------------------------------------------
def test_the_pointer_only_moves_forward():
    night_2 = shard_for(CONFIG, date(2026, 1, 2))
    current = {"model_arn": "arn:m1", "shard": {"order": "2026-01-02"}}
    assert publish_decision(None, night_2, "arn:m2")[0]
    assert publish_decision(current, shard_for(CONFIG, date(2026, 1, 3)), "arn:m3")[0]
    assert publish_decision(current, night_2, "arn:m2b")[0]  # a forced relabel of the same night replaces it
    assert not publish_decision(current, shard_for(CONFIG, date(2026, 1, 1)), "arn:old")[0]
    assert not publish_decision(current, night_2, "arn:m1")[0]  # a rerun that reused its job: nothing new
    assert not publish_decision(current, night_2, None)[0]


# -- notification --------------------------------------------------------------------------------------------------
def test_notifications_carry_no_credentials():
    text = redact(
        "AccessKeyId AKIAIOSFODNN7EXAMPLE aws_secret_access_key=wJalrXUtnFEMI/K7MDENG "
        "conn aws://user:hunter2@host password: hunter3"
    )
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "hunter2", "hunter3"):
        assert secret not in text


def test_failure_notice_names_the_task_run_and_error():
    class TI:
        dag_id, task_id, run_id, try_number = DAG_ID, "check_budget", "manual__2026-01-02", 1

    subject, message = failure_notice(
        {"ti": TI(), "exception": ValueError("over budget token=abc123"), "logical_date": datetime(2026, 1, 2)}
    )
    assert subject == f"[Airflow] {DAG_ID}.check_budget failed"
    assert "manual__2026-01-02" in message and "ValueError: over budget" in message and "abc123" not in message
