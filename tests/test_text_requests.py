"""Text-classification labeling requests (the active-learning loop's human batches): the crowd-classifier worker
template and the CreateLabelingJob request, checked against botocore's model and run through the emulator."""

from __future__ import annotations

import html
import json
import uuid

import pytest

from groundtruth.config import LabelingSettings
from groundtruth.manifests import label_categories, text_classification_template
from groundtruth.requests import validate_request
from groundtruth.stages import text_classification_request

ROLE = "arn:aws:iam::123456789012:role/GroundTruthExecution"
BUCKET = "text-requests-tests"
HOSTILE = '"><script>alert(1)</script>{{ task.input | to_json }}'


def _settings(region: str = "us-east-1", **extra) -> LabelingSettings:
    return LabelingSettings(name="news", region=region, bucket=BUCKET, prefix="al", role_arn=ROLE, **extra)


def _request(settings: LabelingSettings, prefix: str = "s3://b/p", job_name: str = "al-news-human-r1") -> dict:
    return text_classification_request(
        settings,
        manifest_uri=f"{prefix}/input.manifest",
        labels_uri=f"{prefix}/label_categories.json",
        template_uri=f"{prefix}/instructions.template",
        output_uri=f"{prefix}/output/",
        job_name=job_name,
        tags={"airflow:dag_id": "active_learning_news"},
    )


def test_request_passes_the_botocore_model_and_sends_humans_only():
    request = _request(_settings())
    validate_request(request)  # raises naming the field on any breach
    assert "LabelingJobAlgorithmsConfig" not in request  # the loop auto-labels with its own model
    assert request["LabelAttributeName"] == "category"
    assert request["LabelCategoryConfigS3Uri"] == "s3://b/p/label_categories.json"
    htc = request["HumanTaskConfig"]
    assert htc["UiConfig"] == {"UiTemplateS3Uri": "s3://b/p/instructions.template"}
    assert htc["NumberOfHumanWorkersPerDataObject"] == 3
    assert htc["PublicWorkforceTaskPrice"] == {"AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}}
    assert {"Key": "airflow:dag_id", "Value": "active_learning_news"} in request["Tags"]


@pytest.mark.parametrize(
    ("region", "account"),
    [("us-east-1", "432418664414"), ("eu-west-1", "568282634449"), ("ap-northeast-1", "477331159723")],
)
def test_request_names_the_regions_text_multiclass_lambdas(region, account):
    htc = _request(_settings(region))["HumanTaskConfig"]
    assert htc["PreHumanTaskLambdaArn"] == f"arn:aws:lambda:{region}:{account}:function:PRE-TextMultiClass"
    assert htc["AnnotationConsolidationConfig"] == {
        "AnnotationConsolidationLambdaArn": f"arn:aws:lambda:{region}:{account}:function:ACS-TextMultiClass"
    }
    assert htc["WorkteamArn"] == f"arn:aws:sagemaker:{region}:394669845002:workteam/public-crowd/default"


def test_request_ignores_the_settings_auto_labeling_switch():
    assert "LabelingJobAlgorithmsConfig" not in _request(_settings(auto_labeling=True))


def test_template_is_the_crowd_classifier_over_the_label_file():
    template = text_classification_template(["business", "health"], "Which section does this headline belong in?")
    assert '<crowd-classifier\n    name="crowd-classifier"' in template
    assert 'categories="{{ task.input.labels | to_json | escape }}"' in template
    assert "<classification-target>{{ task.input.taskObject }}</classification-target>" in template
    assert 'header="Which section does this headline belong in?"' in template
    assert "<li>business</li><li>health</li>" in template


def test_template_escapes_a_hostile_class_name_and_instructions():
    template = text_classification_template(["business", HOSTILE], f"Pick one {HOSTILE}")
    assert "<script>alert" not in template and '"><script' not in template
    # braces too: a class name must not become a Liquid tag that the task page evaluates
    assert "{{ task.input | to_json }}" not in template
    assert html.escape('"><script>alert(1)</script>', quote=True) in template
    assert template.count("{{") == 2  # only the template's own two Liquid expressions


@pytest.mark.parametrize(
    ("categories", "instructions", "message"),
    [
        ([], "Pick one", "at least two"),
        (["a"], "Pick one", "at least two"),
        (["a", " "], "Pick one", "non-empty names"),
        (["a", "b", "a"], "Pick one", "repeated: 'a'"),
        (["a", "b"], "  ", "instructions"),
    ],
)
def test_template_refuses_unusable_categories_or_instructions(categories, instructions, message):
    with pytest.raises(ValueError, match=message):
        text_classification_template(categories, instructions)


def test_label_categories_file_is_the_documented_format():
    assert json.loads(label_categories(["business", "health & medicine"])) == {
        "document-version": "2018-11-28",
        "labels": [{"label": "business"}, {"label": "health & medicine"}],
    }


@pytest.mark.parametrize(
    ("names", "message"),
    [(["business"], "at least two"), (["b", "e", "b"], "repeated: 'b'"), (["b", ""], "non-empty names")],
)
def test_label_categories_refuses_what_text_classification_refuses(names, message):
    with pytest.raises(ValueError, match=message):
        label_categories(names)


def test_a_job_from_the_request_labels_every_line_on_the_emulator(emulator, s3, boto_session):
    from emulator.sim.textcorpus import seed_text
    from tests.emulator.helpers import wait_for_job

    prefix = f"text-requests-{uuid.uuid4().hex[:8]}"
    seeded = seed_text(emulator.url, BUCKET, prefix, articles=40, labeled_share=0.0, seed=4242)
    classes = list(seeded["classes"])
    # the job reads the label file the project writes, not the seeding helper's own
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/class_labels.json", Body=label_categories(classes))
    template = text_classification_template(classes, "Which news section does this headline belong in?")
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/instructions.template", Body=template.encode())

    name = f"text-request-{uuid.uuid4().hex[:10]}"
    request = text_classification_request(
        _settings(),
        manifest_uri=seeded["manifest"],
        labels_uri=f"s3://{BUCKET}/{prefix}/class_labels.json",
        template_uri=f"s3://{BUCKET}/{prefix}/instructions.template",
        output_uri=f"s3://{BUCKET}/{prefix}/output/",
        job_name=name,
        tags={"airflow:dag_id": "active_learning_news"},
    )
    sagemaker = boto_session.client("sagemaker", endpoint_url=emulator.url)
    sagemaker.create_labeling_job(**request)
    desc = wait_for_job(sagemaker, name, emulator.app.labeling, timeout=120)

    assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
    assert desc["LabelCounters"]["HumanLabeled"] == 40
    assert desc["LabelCounters"]["MachineLabeled"] == 0 and desc["LabelCounters"]["Unlabeled"] == 0
    bucket, key = desc["LabelingJobOutput"]["OutputDatasetS3Uri"][5:].split("/", 1)
    lines = [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]
    manifest_key = seeded["manifest"].split("/", 3)[3]
    inputs = [json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read().splitlines()]
    assert [line["source"] for line in lines] == [line["source"] for line in inputs]
    for line in lines:
        assert isinstance(line["category"], int) and 0 <= line["category"] < len(classes)
        meta = line["category-metadata"]
        assert meta["type"] == "groundtruth/text-classification"
        assert meta["human-annotated"] == "yes" and meta["class-name"] == classes[line["category"]]
        assert meta["job-name"] == f"labeling-job/{name}"
