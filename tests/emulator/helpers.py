"""Building blocks for labeling-job tests against the emulator: an experiment bucket and a valid request."""

from __future__ import annotations

import json
import uuid

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/GroundTruthExecution"
WORKTEAM = f"arn:aws:sagemaker:{REGION}:394669845002:workteam/public-crowd/default"
PRE = f"arn:aws:lambda:{REGION}:432418664414:function:PRE-BoundingBox"
ACS = f"arn:aws:lambda:{REGION}:432418664414:function:ACS-BoundingBox"
ALGO = f"arn:aws:sagemaker:{REGION}:027400017018:labeling-job-algorithm-specification/object-detection"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def prepare_experiment(s3, bucket: str, image_keys: list[str], source_bucket: str = "open-images-dataset") -> dict:
    """Copy images into `bucket`, write manifest, template and labels; return their URIs."""
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=bucket)
    lines = []
    for key in image_keys:
        dest = f"images/{key.rsplit('/', 1)[-1]}"
        s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": source_bucket, "Key": key})
        lines.append(json.dumps({"source-ref": f"s3://{bucket}/{dest}"}))
    prefix = unique("exp")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/input.manifest", Body="\n".join(lines) + "\n")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/class_labels.json", Body=json.dumps({"labels": [{"label": "Bird"}]}))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/instructions.template", Body="<crowd-form></crowd-form>")
    return {
        "manifest": f"s3://{bucket}/{prefix}/input.manifest",
        "labels": f"s3://{bucket}/{prefix}/class_labels.json",
        "template": f"s3://{bucket}/{prefix}/instructions.template",
        "output": f"s3://{bucket}/{prefix}/output/",
    }


def request(name: str, uris: dict, auto_labeling: bool = True, initial_model: str | None = None, **extra) -> dict:
    req = {
        "LabelingJobName": name,
        "LabelAttributeName": "category",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": uris["manifest"]}},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"]},
        },
        "OutputConfig": {"S3OutputPath": uris["output"]},
        "RoleArn": ROLE,
        "LabelCategoryConfigS3Uri": uris["labels"],
        "HumanTaskConfig": {
            "WorkteamArn": WORKTEAM,
            "UiConfig": {"UiTemplateS3Uri": uris["template"]},
            "PreHumanTaskLambdaArn": PRE,
            "TaskKeywords": ["image", "object", "detection"],
            "TaskTitle": "Please draw a box around each Bird.",
            "TaskDescription": "Dear Annotator, please draw a box around each Bird. Thank you!",
            "NumberOfHumanWorkersPerDataObject": 3,
            "TaskTimeLimitInSeconds": 300,
            "TaskAvailabilityLifetimeInSeconds": 21600,
            "MaxConcurrentTaskCount": 200,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": ACS},
            "PublicWorkforceTaskPrice": {"AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}},
        },
    }
    if auto_labeling:
        req["LabelingJobAlgorithmsConfig"] = {"LabelingJobAlgorithmSpecificationArn": ALGO}
        if initial_model:
            req["LabelingJobAlgorithmsConfig"]["InitialActiveLearningModelArn"] = initial_model
    req.update(extra)
    return req


def wait_for_job(sagemaker, name: str, backend, timeout: float = 900) -> dict:
    """Block until the job is terminal by joining its thread in the in-process emulator (no polling sleeps)."""
    thread = backend._threads.get(backend.get(REGION, name).arn)
    if thread is not None:
        thread.join(timeout)
    desc = sagemaker.describe_labeling_job(LabelingJobName=name)
    assert desc["LabelingJobStatus"] in ("Completed", "Failed", "Stopped"), desc["LabelingJobStatus"]
    return desc
