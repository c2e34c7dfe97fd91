"""The pure pieces behind training and transform jobs, without the endpoint: the training toolkit's argument and
variable rules, safe unpacking, the JSONPath subset, fault stages, and the job's own transitions."""

from __future__ import annotations

import io
import json
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from emulator.faults import FaultConfig, FaultInjector
from emulator.training.data import DataError, safe_extract
from emulator.training.models import TrainingJob
from emulator.training.scriptmode import (
    TrainingEnvironment,
    decode_hyperparameters,
    run_process,
    to_cmd_args,
    user_hyperparameters,
)
from emulator.training.validation import parse_filter


def _tar(members: list[tarfile.TarInfo], payload: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def test_hyperparameters_are_decoded_as_the_sdk_quotes_them_and_passed_as_sorted_arguments():
    raw = {
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": "s3://b/code/sourcedir.tar.gz",
        "epochs": "10",
        "learning-rate": "0.5",
        "name": "bare words",
        "layers": "[64, 32]",
    }
    decoded = decode_hyperparameters(raw)
    assert decoded["sagemaker_program"] == "train.py"
    assert decoded["sagemaker_submit_directory"] == "s3://b/code/sourcedir.tar.gz"
    user = user_hyperparameters(decoded)
    assert user == {"epochs": 10, "learning-rate": 0.5, "name": "bare words", "layers": [64, 32]}
    assert to_cmd_args(user) == [
        "--epochs", "10", "--layers", "[64, 32]", "--learning-rate", "0.5", "--name", "bare words",
    ]  # fmt: skip


def test_training_environment_lays_out_opt_ml_and_its_variables(tmp_path):
    env = TrainingEnvironment(
        root=tmp_path,
        job_name="j",
        hyperparameters={"sagemaker_program": '"train.py"', "epochs": "3"},
        input_data_config={"train": {"TrainingInputMode": "File"}, "validation": {"TrainingInputMode": "File"}},
        resource_config={"current_host": "algo-1", "hosts": ["algo-1"]},
        environment={"MY_SETTING": "1"},
    )
    env.create()
    variables = env.variables()
    assert variables["SM_CHANNEL_TRAIN"] == str(tmp_path / "input/data/train")
    assert json.loads(variables["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(variables["SM_HPS"]) == {"epochs": 3} and variables["SM_HP_EPOCHS"] == "3"
    assert variables["SM_MODEL_DIR"] == str(tmp_path / "model") and variables["MY_SETTING"] == "1"
    assert json.loads((tmp_path / "input/config/hyperparameters.json").read_text())["epochs"] == "3"
    assert (tmp_path / "output/data").is_dir() and env.command()[1:] == ["train.py", "--epochs", "3"]


@pytest.mark.parametrize(
    "member",
    [tarfile.TarInfo("../escape.py"), tarfile.TarInfo("/etc/escape.py"), tarfile.TarInfo("code/../../escape.py")],
)
def test_unpacking_refuses_paths_that_leave_the_directory(tmp_path, member):
    with pytest.raises(DataError, match="would leave its directory"):
        safe_extract(_tar([member]), tmp_path / "code", "sourcedir.tar.gz")
    assert not (tmp_path / "escape.py").exists()


def test_unpacking_refuses_links_and_keeps_regular_files(tmp_path):
    link = tarfile.TarInfo("evil")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(DataError, match="not a regular file"):
        safe_extract(_tar([link]), tmp_path, "model.tar.gz")
    here, script = tarfile.TarInfo("."), tarfile.TarInfo("./pkg/train.py")
    here.type = tarfile.DIRTYPE
    safe_extract(_tar([here, script], b"print(1)"), tmp_path, "sourcedir.tar.gz")
    assert (tmp_path / "pkg/train.py").read_bytes() == b"print(1)"


def test_jsonpath_subset_applies_and_refuses_the_rest():
    record = {"id": 3, "source": "t", "SageMakerOutput": {"label": ["__label__1"]}}
    assert parse_filter("$").apply(record) is record
    assert parse_filter("$.source").apply(record) == "t"
    assert parse_filter("$['id','SageMakerOutput']").apply(record) == {
        "id": 3,
        "SageMakerOutput": record["SageMakerOutput"],
    }
    assert parse_filter('$["id"]').apply(record) == 3
    for unsupported in ("$..id", "$[0]", "$.a.b", "id"):
        with pytest.raises(ValueError, match="outside the subset"):
            parse_filter(unsupported)


def test_fault_stages_are_validated_per_kind_and_labeling_keeps_its_fields():
    injector = FaultInjector(
        FaultConfig(
            fail_job_name_contains="label",
            fail_job_at="human",
            fail_training_job_name_contains="train",
            fail_training_job_at="uploading",
        )
    )
    assert injector.job_failure_point("my-label-job") == "human"
    assert injector.job_failure_point("my-train-job", kind="training") == "uploading"
    assert injector.job_failure_point("my-train-job", kind="transform") is None
    with pytest.raises(ValueError, match=r"starting\|downloading\|training\|uploading for training jobs"):
        FaultConfig(fail_training_job_at="human")
    with pytest.raises(ValueError, match="for transform jobs"):
        FaultConfig(fail_transform_job_at="downloading")


def test_a_stop_during_upload_ends_stopped_with_the_artifact_and_nothing_moves_after():
    job = TrainingJob(name="t", region="us-east-1", request={}, created_at=time.time())
    assert job.enter("Downloading", "d") and job.enter("Training", "t") and job.enter("Uploading", "u")
    job.request_stop()
    assert (job.status, job.secondary_status) == ("Stopping", "Stopping")
    assert not job.enter("Training", "again")
    job.complete("s3://b/t/output/model.tar.gz")
    assert (job.status, job.secondary_status, job.model_artifact) == (
        "Stopped",
        "Stopped",
        "s3://b/t/output/model.tar.gz",
    )
    job.fail("too late")
    job.request_stop()
    assert job.status == "Stopped" and job.failure_reason is None
    statuses = [t["Status"] for t in job.transitions]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Stopping", "Stopped"]
    assert all("EndTime" in t for t in job.transitions)


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, threading\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\n"
        "threading.Event().wait()\n"
    )
    stop, lines, up = threading.Event(), [], threading.Event()

    def on_line(line: str) -> None:
        lines.append(line)
        up.set()

    runner = threading.Thread(
        target=lambda: lines.append(
            run_process([sys.executable, str(script)], Path(tmp_path), {}, on_line, stop, 600, grace_seconds=0.2)
        )
    )
    runner.start()
    assert up.wait(60)
    stop.set()
    runner.join(60)
    outcome = lines[-1]
    assert outcome.ended_by == "stop" and outcome.exit_code == -9


def test_metric_definitions_read_the_last_value_of_each_metric_from_the_log():
    from emulator.training.runner import JobFailed, MetricScraper

    scraper = MetricScraper(
        [{"Name": "validation:accuracy", "Regex": r"#validation_accuracy: ([0-9.]+)"}, {"Name": "loss", "Regex": "x"}]
    )
    for line in ("#validation_accuracy: 0.5; epoch 1", "noise", "#validation_accuracy: 0.75; epoch 2"):
        scraper.scan(line)
    assert scraper.values == {"validation:accuracy": 0.75}  # a regex without a group yields nothing
    with pytest.raises(JobFailed, match="MetricDefinitions entry"):
        MetricScraper([{"Name": "broken", "Regex": "(unclosed"}])
