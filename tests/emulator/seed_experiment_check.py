"""The seed's experiment by hand against the emulator: job 1 from scratch, job 2 from job 1's model, job 3 without.

Run with `make acceptance` (about 4 minutes on 2 cores). Not yet part of `make test`: the last two runs passed
(+14.2 and +16.4 points, machine mIoU >= 0.605), the three before the fine-tuning change did not all; the margin is
not yet shown to be reliable, see issue #3 and emulator/README.md.

Machine-labeled shares come out of the emulator's real training and calibration; this test pins the relations the
seed observed (pretrained clearly above the fair baseline) and the quality target, and that the notebook's own
post-processing code reads the outputs and agrees with LabelCounters.
"""

from __future__ import annotations

import csv
import io
import json
import resource
import time

import pytest

from groundtruth.quality import image_miou, openimages_to_pixels
from tests.emulator.helpers import prepare_experiment, request, unique, wait_for_job
from tests.emulator.notebook import post_process

pytestmark = pytest.mark.slow
BUCKET = "seed-experiment"


@pytest.fixture(scope="module")
def experiment(s3, sagemaker, backend, bird_keys):
    first, second = bird_keys[:1250], bird_keys[1250:2500]
    assert len(second) == 1250
    half_1 = prepare_experiment(s3, BUCKET, first)
    half_2 = prepare_experiment(s3, BUCKET, second)
    names = {k: unique(f"pretrained-model-{k}") for k in ("iteration-1", "iteration-2", "iteration-3")}
    started = time.monotonic()
    sagemaker.create_labeling_job(**request(names["iteration-1"], half_1))
    sagemaker.create_labeling_job(**request(names["iteration-3"], half_2))  # alongside job 1, as the DAG does
    job_1 = wait_for_job(sagemaker, names["iteration-1"], backend)
    assert job_1["LabelingJobStatus"] == "Completed", job_1.get("FailureReason")
    model = job_1["LabelingJobOutput"]["FinalActiveLearningModelArn"]
    sagemaker.create_labeling_job(**request(names["iteration-2"], half_2, initial_model=model))
    jobs = {k: wait_for_job(sagemaker, n, backend) for k, n in names.items()}
    # The whole process: pytest, the in-process emulator (moto included) and the 2,500-image mirror it serves.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"3 jobs on 2 x 1,250 images: {time.monotonic() - started:.0f} s wall, process peak RSS {peak_mb:.0f} MB")
    return jobs


def reference_boxes(s3) -> dict[str, list[tuple[float, float, float, float]]]:
    body = s3.get_object(Bucket="open-images-dataset", Key="annotations/test-annotations-bbox.csv")["Body"].read()
    tree = json.loads(
        s3.get_object(Bucket="open-images-dataset", Key="annotations/bbox_labels_600_hierarchy.json")["Body"].read()
    )
    from groundtruth.openimages import class_subtree

    birds = class_subtree(tree, "/m/015p6")
    boxes: dict[str, list] = {}
    for row in csv.DictReader(io.StringIO(body.decode())):
        if row["LabelName"] in birds:
            boxes.setdefault(row["ImageID"], []).append(tuple(float(row[k]) for k in ("XMin", "XMax", "YMin", "YMax")))
    return boxes


def output_lines(s3, desc: dict) -> list[dict]:
    bucket, key = desc["LabelingJobOutput"]["OutputDatasetS3Uri"][5:].split("/", 1)
    return [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]


def machine_miou(lines: list[dict], refs: dict) -> tuple[float, int]:
    scores = []
    for line in lines:
        meta = line["category-metadata"]
        if meta.get("human-annotated") != "no":
            continue
        size = line["category"]["image_size"][0]
        image_id = line["source-ref"].rsplit("/", 1)[-1][:-4]
        truth = [openimages_to_pixels(*b, size["width"], size["height"]) for b in refs.get(image_id, [])]
        predicted = [
            ((a["left"], a["top"], a["width"], a["height"]), o["confidence"])
            for a, o in zip(line["category"]["annotations"], meta["objects"], strict=True)
        ]
        scores.append(image_miou(predicted, truth))
    return (sum(scores) / len(scores) if scores else float("nan")), len(scores)


def test_pretrained_job_machine_labels_clearly_more_than_the_baseline(experiment, s3):
    refs = reference_boxes(s3)
    figures = {}
    for key, desc in experiment.items():
        assert desc["LabelingJobStatus"] == "Completed", desc.get("FailureReason")
        counters = desc["LabelCounters"]
        assert counters["TotalLabeled"] == 1250 and counters["Unlabeled"] == 0
        miou, n = machine_miou(output_lines(s3, desc), refs)
        figures[key] = {"machine_pct": 100 * counters["MachineLabeled"] / 1250, "machine_miou": miou, "n": n}
    print("seed experiment on the emulator:", json.dumps(figures, indent=1))
    assert figures["iteration-1"]["machine_pct"] > 0
    assert figures["iteration-2"]["machine_pct"] >= figures["iteration-3"]["machine_pct"] + 10
    for key, fig in figures.items():
        if fig["n"]:
            assert fig["machine_miou"] >= 0.6, (key, fig)


def test_job_2_starts_from_job_1s_model_and_job_3_from_none(experiment, sagemaker):
    job_1, job_2, job_3 = experiment["iteration-1"], experiment["iteration-2"], experiment["iteration-3"]
    model = job_1["LabelingJobOutput"]["FinalActiveLearningModelArn"]
    assert job_2["LabelingJobAlgorithmsConfig"]["InitialActiveLearningModelArn"] == model
    assert "InitialActiveLearningModelArn" not in job_3["LabelingJobAlgorithmsConfig"]
    described = sagemaker.describe_model(ModelName=model.rsplit("/", 1)[-1])
    assert described["ModelArn"] == model
    assert described["PrimaryContainer"]["ModelDataUrl"].endswith("/output/model.tar.gz")


def test_notebook_post_processing_agrees_with_label_counters(
    experiment, sagemaker, s3, boto_session, emulator, tmp_path
):
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    for key, desc in experiment.items():
        workdir = tmp_path / key
        workdir.mkdir()
        parsed = post_process(sagemaker, s3, logs, desc["LabelingJobName"], workdir)
        counters = desc["LabelCounters"]
        assert parsed["human_images"] == counters["HumanLabeled"], key
        assert parsed["machine_images"] == counters["MachineLabeled"], key
        if key != "iteration-2":  # a pretrained job may auto-label everything before it ever trains
            assert parsed["training_sizes"], key
        for maps in parsed["training_mAPs"]:
            assert len(maps) >= 1 and all(0.0 <= m <= 1.0 for m in maps)
