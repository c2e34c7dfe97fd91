"""Request building, region tables, prices, job names and validation against botocore's model."""

from __future__ import annotations

import itertools
import random
import re
from decimal import Decimal

import botocore.session
import pytest
from pydantic import ValidationError

from groundtruth.pricing import price_to_usd, usd_price
from groundtruth.requests import (
    AUTO_LABELING_ACCOUNT,
    GROUND_TRUTH_LAMBDA_ACCOUNTS,
    JOB_NAME_PATTERN,
    TASK_PRESETS,
    LabelingJobConfig,
    RequestValidationError,
    TaskType,
    auto_labeling_algorithm_arn,
    build_create_labeling_job_request,
    builtin_lambda_arns,
    coerce_request_types,
    labeling_job_name,
    request_problems,
    validate_request,
    with_attempt_suffix,
)
from tests.plugins.fakes import job_config, job_request

BUILTIN_TYPES = [t for t in TaskType if t is not TaskType.CUSTOM]
AUTO_LABELING_TYPES = [t for t in BUILTIN_TYPES if TASK_PRESETS[t].auto_labeling_algorithm]


# ------------------------------------------------------------------------------------------------ region tables
def _documented_arns(shape_name: str, member: str) -> set[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    text = model.shape_for(shape_name).members[member].documentation
    return set(re.findall(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9-]+", text))


def test_lambda_table_matches_the_api_reference_shipped_with_botocore():
    documented = _documented_arns("HumanTaskConfig", "PreHumanTaskLambdaArn") | _documented_arns(
        "AnnotationConsolidationConfig", "AnnotationConsolidationLambdaArn"
    )
    ours = {
        arn for t in BUILTIN_TYPES for region in GROUND_TRUTH_LAMBDA_ACCOUNTS for arn in builtin_lambda_arns(t, region)
    }
    assert ours <= documented
    documented_regions = {arn.split(":")[3] for arn in documented if arn.endswith("-BoundingBox")}
    assert documented_regions == set(GROUND_TRUTH_LAMBDA_ACCOUNTS)


def test_auto_labeling_account_matches_the_api_reference():
    model = botocore.session.get_session().get_service_model("sagemaker")
    text = model.shape_for("LabelingJobAlgorithmsConfig").members["LabelingJobAlgorithmSpecificationArn"].documentation
    assert f":{AUTO_LABELING_ACCOUNT}:labeling-job-algorithm-specification/object-detection" in text


@pytest.mark.parametrize(("task_type", "region"), itertools.product(BUILTIN_TYPES, GROUND_TRUTH_LAMBDA_ACCOUNTS))
def test_every_builtin_task_type_builds_in_every_documented_region(task_type, region):
    auto = task_type in AUTO_LABELING_TYPES
    request = build_create_labeling_job_request(job_config(task_type=task_type, region=region, auto_labeling=auto))
    suffix = TASK_PRESETS[task_type].lambda_suffix
    account = GROUND_TRUTH_LAMBDA_ACCOUNTS[region]
    human = request["HumanTaskConfig"]
    assert human["PreHumanTaskLambdaArn"] == f"arn:aws:lambda:{region}:{account}:function:PRE-{suffix}"
    assert (
        human["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"]
        == f"arn:aws:lambda:{region}:{account}:function:ACS-{suffix}"
    )
    if auto:
        algorithm = TASK_PRESETS[task_type].auto_labeling_algorithm
        assert request["LabelingJobAlgorithmsConfig"]["LabelingJobAlgorithmSpecificationArn"] == (
            f"arn:aws:sagemaker:{region}:027400017018:labeling-job-algorithm-specification/{algorithm}"
        )


def test_bounding_box_in_us_east_1_matches_the_notebook():
    pre, acs = builtin_lambda_arns("bounding_box", "us-east-1")
    assert pre == "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox"
    assert acs == "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
    assert auto_labeling_algorithm_arn("bounding_box", "us-east-1") == (
        "arn:aws:sagemaker:us-east-1:027400017018:labeling-job-algorithm-specification/object-detection"
    )


def test_unsupported_region_names_the_region_and_the_supported_ones():
    with pytest.raises(ValueError, match="sa-east-1") as info:
        builtin_lambda_arns("bounding_box", "sa-east-1")
    assert "us-west-2" in str(info.value) and "ap-southeast-2" in str(info.value)
    with pytest.raises(ValidationError, match="sa-east-1"):
        LabelingJobConfig.model_validate(job_config(region="sa-east-1"))


def test_custom_task_uses_the_given_lambdas_in_any_region():
    pre = "arn:aws:lambda:sa-east-1:123456789012:function:my-pre"
    acs = "arn:aws:lambda:sa-east-1:123456789012:function:my-acs"
    request = build_create_labeling_job_request(
        job_config(
            task_type="custom",
            region="sa-east-1",
            pre_human_task_lambda_arn=pre,
            annotation_consolidation_lambda_arn=acs,
        )
    )
    assert request["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == pre
    assert request["HumanTaskConfig"]["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == acs


def test_custom_task_without_lambdas_is_rejected():
    with pytest.raises(ValidationError, match="pre_human_task_lambda_arn"):
        LabelingJobConfig.model_validate(job_config(task_type="custom"))


@pytest.mark.parametrize("task_type", ["image_multi_label_classification", "text_multi_label_classification", "custom"])
def test_auto_labeling_is_refused_where_the_service_has_no_algorithm(task_type):
    with pytest.raises(ValueError, match="does not support auto-labeling"):
        auto_labeling_algorithm_arn(task_type, "us-east-1")


def test_initial_model_and_stopping_conditions_and_kms_and_tags_reach_the_request():
    model = "arn:aws:sagemaker:us-east-1:123456789012:model/iteration-1-final"
    request = build_create_labeling_job_request(
        job_config(
            auto_labeling=True,
            initial_model_arn=model,
            volume_kms_key_id="alias/volume",
            output_kms_key_id="alias/output",
            max_human_labeled_object_count=500,
            max_percentage_labeled=90,
            content_classifiers=["FreeOfAdultContent"],
            task_keywords=["image", "bird"],
            tags={"experiment": "birds"},
        )
    )
    assert request["LabelingJobAlgorithmsConfig"]["InitialActiveLearningModelArn"] == model
    assert request["LabelingJobAlgorithmsConfig"]["LabelingJobResourceConfig"] == {"VolumeKmsKeyId": "alias/volume"}
    assert request["OutputConfig"]["KmsKeyId"] == "alias/output"
    assert request["StoppingConditions"] == {
        "MaxHumanLabeledObjectCount": 500,
        "MaxPercentageOfInputDatasetLabeled": 90,
    }
    assert request["InputConfig"]["DataAttributes"] == {"ContentClassifiers": ["FreeOfAdultContent"]}
    assert request["Tags"] == [{"Key": "experiment", "Value": "birds"}]


def test_initial_model_without_auto_labeling_is_rejected():
    with pytest.raises(ValidationError, match="initial_model_arn"):
        LabelingJobConfig.model_validate(
            job_config(initial_model_arn="arn:aws:sagemaker:us-east-1:123456789012:model/m")
        )


def test_label_attribute_ending_in_metadata_is_rejected():
    with pytest.raises(ValidationError, match="-metadata"):
        LabelingJobConfig.model_validate(job_config(label_attribute_name="category-metadata"))


# ---------------------------------------------------------------------------------------------------- workforces
def test_public_workforce_gets_the_mechanical_turk_team_and_the_exact_price():
    request = build_create_labeling_job_request(
        job_config(
            region="eu-west-1",
            workforce={"kind": "public", "price_usd": 0.036},
            content_classifiers=["FreeOfPersonallyIdentifiableInformation"],
        )
    )
    human = request["HumanTaskConfig"]
    assert human["WorkteamArn"] == "arn:aws:sagemaker:eu-west-1:394669845002:workteam/public-crowd/default"
    assert human["PublicWorkforceTaskPrice"] == {"AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}}


def test_public_workforce_requires_the_pii_declaration():
    with pytest.raises(ValidationError, match="FreeOfPersonallyIdentifiableInformation"):
        LabelingJobConfig.model_validate(job_config(workforce={"kind": "public", "price_usd": 0.036}))


@pytest.mark.parametrize("kind", ["private", "vendor"])
def test_private_and_vendor_workforces_use_their_team_and_no_price(kind):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:workteam/vendor-crowd/acme"
    request = build_create_labeling_job_request(job_config(workforce={"kind": kind, "workteam_arn": arn}))
    assert request["HumanTaskConfig"]["WorkteamArn"] == arn
    assert "PublicWorkforceTaskPrice" not in request["HumanTaskConfig"]


def test_workteam_arn_is_checked():
    with pytest.raises(ValidationError, match="work team ARN"):
        LabelingJobConfig.model_validate(job_config(workforce={"kind": "private", "workteam_arn": "team-1"}))


@pytest.mark.parametrize(
    ("amount", "dollars", "cents", "tenths"),
    [
        (0.036, 0, 3, 6),
        (0.012, 0, 1, 2),
        (0.001, 0, 0, 1),
        (1.2, 1, 20, 0),
        ("0.840", 0, 84, 0),
        (Decimal("2.999"), 2, 99, 9),
        (2, 2, 0, 0),
    ],
)
def test_price_converts_exactly(amount, dollars, cents, tenths):
    price = usd_price(amount)
    assert price == {"AmountInUsd": {"Dollars": dollars, "Cents": cents, "TenthFractionsOfACent": tenths}}
    assert price_to_usd(price) == Decimal(str(amount))


@pytest.mark.parametrize("amount", [0.0365, 0.0001, 0, -0.036, 3, 3.0, "abc", True, float("inf")])
def test_price_that_cannot_be_represented_is_rejected(amount):
    with pytest.raises(ValueError, match="Price"):
        usd_price(amount)


def test_every_representable_price_round_trips():
    for tenths in range(1, 3000):
        amount = tenths / 1000
        assert price_to_usd(usd_price(amount)) == Decimal(tenths) / 1000


# --------------------------------------------------------------------------------------------------------- names
def test_job_name_is_valid_readable_and_deterministic():
    name = labeling_job_name("labeling_experiment_birds", "manual__2024-05-17T01:23:45+00:00", "label_iteration_1", 1)
    assert name == labeling_job_name(
        "labeling_experiment_birds", "manual__2024-05-17T01:23:45+00:00", "label_iteration_1", 1
    )
    assert name.startswith("labeling-experiment-birds-label-iteration-1-1-")
    assert JOB_NAME_PATTERN.fullmatch(name) and len(name) <= 63


def test_job_names_stay_valid_and_short_for_hostile_inputs():
    rng = random.Random(7)
    alphabet = "abcXYZ019_-.~:+ /é"
    for _ in range(500):
        parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(3)]
        for attempt in (0, 1, 42, 999):
            name = labeling_job_name(*parts, iteration=rng.randint(0, 10**9), attempt=attempt)
            assert JOB_NAME_PATTERN.fullmatch(name), name
            assert len(name) <= 63


def test_job_names_differ_for_every_input_even_case_insensitively():
    inputs = [
        ("dag", "run", "task", 1),
        ("dag", "run", "task", 2),
        ("dag", "run2", "task", 1),
        ("dag", "run", "task2", 1),
        ("dag2", "run", "task", 1),
        ("DAG", "run", "task", 1),  # differs only in case
        ("dag", "RUN", "task", 1),
        ("dag", "run", "Task", 1),
        ("dag-x", "run", "task", 1),  # slugs collide, hashes do not
        ("dag_x", "run", "task", 1),
        ("d" * 100 + "a", "run", "task", 1),  # truncated readable parts collide
        ("d" * 100 + "b", "run", "task", 1),
    ]
    names = [labeling_job_name(*i) for i in inputs]
    assert len({n.lower() for n in names}) == len(inputs)
    assert all(n == n.lower() for n in names)


def test_many_runs_never_collide():
    names = {labeling_job_name("dag", f"scheduled__{i}", "label", i % 3).lower() for i in range(5000)}
    assert len(names) == 5000


def test_attempt_suffix_is_what_the_operator_looks_for():
    base = labeling_job_name("dag", "run", "task", 1)
    assert labeling_job_name("dag", "run", "task", 1, attempt=2) == with_attempt_suffix(base, 2) == f"{base}-a2"
    long = "x" * 63
    assert with_attempt_suffix(long, 12) == "x" * 59 + "-a12"
    with pytest.raises(ValueError, match="attempt"):
        with_attempt_suffix(base, -1)


# ---------------------------------------------------------------------------------------------------- validation
def test_built_request_passes_the_model():
    validate_request(job_request())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.update(LabelingJobName="-starts-with-dash"), "LabelingJobName"),
        (lambda r: r.update(LabelingJobName="x" * 64), "LabelingJobName"),
        (lambda r: r.pop("RoleArn"), "RoleArn: required"),
        (lambda r: r.update(RoleArn="role/GroundTruth"), "RoleArn"),
        (lambda r: r["HumanTaskConfig"].update(TaskTitle="t" * 129), "HumanTaskConfig.TaskTitle"),
        (
            lambda r: r["HumanTaskConfig"].update(NumberOfHumanWorkersPerDataObject=10),
            "NumberOfHumanWorkersPerDataObject",
        ),
        (lambda r: r["HumanTaskConfig"].update(TaskTimeLimitInSeconds=29), "HumanTaskConfig.TaskTimeLimitInSeconds"),
        (lambda r: r["HumanTaskConfig"].update(TaskKeywords=["ok", "not-ok!"]), "HumanTaskConfig.TaskKeywords[1]"),
        (lambda r: r["HumanTaskConfig"].update(MaxConcurrentTaskCount=5001), "MaxConcurrentTaskCount"),
        (
            lambda r: r["HumanTaskConfig"].update(
                PublicWorkforceTaskPrice={"AmountInUsd": {"Dollars": 3, "Cents": 0, "TenthFractionsOfACent": 0}}
            ),
            "HumanTaskConfig.PublicWorkforceTaskPrice.AmountInUsd.Dollars",
        ),
        (lambda r: r["InputConfig"]["DataSource"]["S3DataSource"].pop("ManifestS3Uri"), "ManifestS3Uri: required"),
        (
            lambda r: r["InputConfig"].update(DataAttributes={"ContentClassifiers": ["FreeOfEverything"]}),
            "InputConfig.DataAttributes.ContentClassifiers[0]",
        ),
        (lambda r: r.update(StoppingConditions={"MaxPercentageOfInputDatasetLabeled": 101}), "StoppingConditions"),
        (lambda r: r.update(Tags=[{"Key": "run", "Value": "a~b"}]), "Tags[0].Value"),
        (lambda r: r.update(Tags=[{"Key": str(i), "Value": "v"} for i in range(51)]), "Tags: 51 items"),
        (lambda r: r.update(LabelAttributeName="category-metadata"), "LabelAttributeName"),
        (lambda r: r.update(Unknown=1), "Unknown: unknown field"),
        (lambda r: r["HumanTaskConfig"].update(TaskTimeLimitInSeconds="300"), "expected an integer"),
    ],
)
def test_validation_names_the_offending_field(change, field):
    request = job_request()
    change(request)
    with pytest.raises(RequestValidationError) as info:
        validate_request(request)
    assert field in str(info.value)


def test_validation_reports_every_problem_at_once():
    problems = request_problems({"LabelingJobName": "ok", "HumanTaskConfig": {"TaskTitle": ""}})
    assert "LabelAttributeName: required" in problems
    assert "HumanTaskConfig.WorkteamArn: required" in problems
    assert "HumanTaskConfig.TaskTitle: 0 characters, the minimum is 1" in problems


def test_unicode_tag_values_are_accepted():
    request = job_request(tags={"owner": "Zoë Müller", "team": "vögel 2"})
    validate_request(request)


def test_templated_numbers_are_restored_only_where_the_model_wants_numbers():
    request = job_request()
    request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] = "3"
    request["HumanTaskConfig"]["TaskTimeLimitInSeconds"] = " 600 "
    request["HumanTaskConfig"]["TaskTitle"] = "42"
    coerced = coerce_request_types(request)
    assert coerced["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] == 3
    assert coerced["HumanTaskConfig"]["TaskTimeLimitInSeconds"] == 600
    assert coerced["HumanTaskConfig"]["TaskTitle"] == "42"
    assert request["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] == "3"  # the input is not mutated
    validate_request(coerced)
