"""Instance pricing for the active-learning loop's cost guardrail: the on-demand table and what a training or
transform job costs, or may cost at most."""

from __future__ import annotations

from decimal import Decimal

import pytest

from groundtruth.pricing import (
    instance_price_per_hour,
    instance_price_table,
    job_cost_usd,
    rounded_usd,
    training_worst_case,
    transform_worst_case,
)

REGION = "us-east-1"
SEED_INSTANCE = "ml.c5.2xlarge"  # the seed's BlazingText training instance
REQUIRED = (
    "ml.c5.xlarge",
    "ml.c5.2xlarge",
    "ml.c5.4xlarge",
    "ml.m5.large",
    "ml.m5.xlarge",
    "ml.m5.2xlarge",
    "ml.p3.2xlarge",
)


def test_table_names_its_source_date_region_and_each_figures_basis():
    table = instance_price_table()
    assert table["source"] == "https://aws.amazon.com/sagemaker/pricing/"
    assert table["retrieved"] and table["region"] == REGION
    for use in ("training", "transform"):
        assert set(REQUIRED) <= set(table[use])
        for instance_type, entry in table[use].items():
            assert Decimal(entry["usd_per_hour"]) > 0, instance_type
            assert isinstance(entry["confirmed"], bool) and entry["evidence"], instance_type


def test_seed_instance_prices_per_hour_for_training_and_transform():
    assert instance_price_per_hour(SEED_INSTANCE, REGION) == Decimal("0.408")
    assert instance_price_per_hour(SEED_INSTANCE, REGION, use="transform") == Decimal("0.408")


def test_job_cost_is_instance_seconds_times_the_hourly_price():
    # 3 instances x 1,000 s x $0.408/h = $0.34
    assert job_cost_usd(SEED_INSTANCE, 3, 1000, REGION, "training") == 0.34
    assert job_cost_usd(SEED_INSTANCE, 1, 0, REGION, "transform") == 0.0


def test_job_cost_rounds_like_rounded_usd():
    # 7 s on one ml.c5.2xlarge: $0.000793... → a hundredth of a cent
    exact = Decimal("0.408") * 7 / 3600
    assert job_cost_usd(SEED_INSTANCE, 1, 7, REGION, "training") == rounded_usd(exact) == 0.0008


def test_training_worst_case_is_max_runtime_times_count_times_price():
    request = {
        "TrainingJobName": "al-news-train-r1",
        "ResourceConfig": {"InstanceType": SEED_INSTANCE, "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 432_000},  # the seed's five days
    }
    estimate = training_worst_case(request, REGION)
    assert estimate["worst_case_usd"] == 48.96  # 120 h x $0.408
    assert estimate["seconds"] == 432_000 and estimate["instance_count"] == 1
    assert estimate["usd_per_hour"] == 0.408 and estimate["price_source"].startswith("https://aws.amazon.com/")
    assert estimate["price_confirmed"] is False  # the table says so; the estimate carries it to the report


def test_transform_worst_case_uses_the_stated_bound():
    request = {
        "TransformJobName": "al-news-infer-r1",
        "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2},
    }
    estimate = transform_worst_case(request, REGION, max_seconds=3600)
    assert estimate["worst_case_usd"] == 0.46  # 2 x 1 h x $0.23
    assert estimate["use"] == "transform" and estimate["seconds_bound"] == "stated by the caller"


def test_unknown_instance_type_is_refused_naming_it_and_the_region():
    with pytest.raises(ValueError, match=r"'ml\.x9\.huge'.*'us-east-1'"):
        instance_price_per_hour("ml.x9.huge", REGION)


def test_region_outside_the_table_is_refused_naming_type_and_region():
    with pytest.raises(ValueError, match=r"ml\.c5\.2xlarge in region 'eu-west-1'.*us-east-1 only"):
        job_cost_usd(SEED_INSTANCE, 1, 60, "eu-west-1", "training")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((SEED_INSTANCE, 0, 60), "instance count"),
        ((SEED_INSTANCE, 1, -1), "seconds"),
        ((SEED_INSTANCE, True, 60), "instance count"),
    ],
)
def test_nonsense_counts_and_durations_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        job_cost_usd(*args, REGION, "training")


def test_unknown_use_and_unpriceable_requests_are_refused_naming_what_is_missing():
    with pytest.raises(ValueError, match="'hosting'"):
        instance_price_per_hour(SEED_INSTANCE, REGION, use="hosting")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"training job al-1: .*MaxRuntimeInSeconds"):
        training_worst_case(
            {"TrainingJobName": "al-1", "ResourceConfig": {"InstanceType": SEED_INSTANCE, "InstanceCount": 1}}, REGION
        )
    with pytest.raises(ValueError, match=r"transform job al-2: .*TransformResources"):
        transform_worst_case({"TransformJobName": "al-2"}, REGION, max_seconds=60)
