"""The seed's experiment by hand against the emulator: job 1 from scratch, job 2 from job 1's model, job 3 without.

About 2 minutes on 2 cores on top of the session's mirror (3 jobs on 2 x 1,250 images). Machine-labeled shares come
out of the emulator's real training and calibration; this pins the relations the seed observed (the pretrained job
clearly above the fair baseline, see `CLEAR_MARGIN_POINTS`), the quality target, and that the notebook's own
post-processing code reads the outputs and agrees with LabelCounters. bench/seed_margin.py repeats the experiment
and prints the spread.
"""

from __future__ import annotations

import json
import resource

import pytest

from tests.emulator.notebook import post_process
from tests.emulator.seed import CLEAR_MARGIN_POINTS, HALF, QUALITY_TARGET, figures, run_experiment

# The module fixture runs the three jobs; beside the other test worker it can take several minutes (a hang guard).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def experiment(s3, sagemaker, backend, bird_keys):
    # Fixed job names: the same random streams every run, so a failure replays (bench/seed_margin.py --prefix
    # seed-experiment) and CI does not draw a new experiment each time; bench/seed_margin.py draws many.
    jobs, wall = run_experiment(s3, sagemaker, backend, bird_keys, bucket="seed-experiment", prefix="seed-experiment")
    # The whole process: pytest, the in-process emulator (moto included) and the 2,500-image mirror it serves.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"3 jobs on 2 x 1,250 images: {wall:.0f} s wall, process peak RSS {peak_mb:.0f} MB")
    return jobs


def test_pretrained_job_machine_labels_clearly_more_than_the_baseline(experiment, s3):
    for key, desc in experiment.items():
        assert desc["LabelingJobStatus"] == "Completed", (key, desc.get("FailureReason"))
        counters = desc["LabelCounters"]
        assert counters["TotalLabeled"] == HALF and counters["Unlabeled"] == 0, (key, counters)
    figs = figures(s3, experiment)
    print("seed experiment on the emulator:", json.dumps(figs, indent=1))
    assert figs["iteration-1"]["machine_pct"] > 0
    margin = figs["iteration-2"]["machine_pct"] - figs["iteration-3"]["machine_pct"]
    assert margin >= CLEAR_MARGIN_POINTS, figs
    # The experiment's machine labels meet the quality target. Each job calibrates to it with a 90% lower bound on
    # its own 250 validation images, so a single job lands at 0.59-0.69 (60 jobs measured, mean 0.64); the labels
    # of all three together (0.62-0.66 over 20 runs) are the figure that does not hinge on one validation draw.
    assert figs["all"]["machine_miou"] >= QUALITY_TARGET, figs


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
