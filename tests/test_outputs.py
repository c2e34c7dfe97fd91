"""Reading a labeling job's outputs: the notebook's parsing rules, on trees written into the emulator's S3 and Logs."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import pytest

from groundtruth.outputs import (
    JobOutputs,
    RoundCounts,
    auto_annotation_iteration,
    consolidation_iteration,
    job_output_uri,
    parse_manifest_line,
    parse_training_log,
    read_job_outputs,
    read_log_messages,
    tally_rounds,
    training_job_of,
)

BUCKET = "gt-outputs-tests"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def box_content(n_boxes: int, human: bool, created: str = "2019-05-17T03:04:05.123456") -> dict:
    """One object's `category` label and metadata, as consolidation and auto-annotation files hold it."""
    return {
        "category": {
            "image_size": [{"width": 640, "height": 480, "depth": 3}],
            "annotations": [
                {"class_id": 0, "left": 10 * i, "top": 5, "width": 20, "height": 30} for i in range(n_boxes)
            ],
        },
        "category-metadata": {
            "objects": [{"confidence": 0.9} for _ in range(n_boxes)],
            "class-map": {"0": "Bird"},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes" if human else "no",
            "creation-date": created,
            "job-name": "labeling-job/job",
        },
    }


def consolidation(entries: list[tuple[int, int]]) -> str:
    """A consolidation-response file: (datasetObjectId, boxes) pairs."""
    return json.dumps(
        [
            {"datasetObjectId": str(i), "consolidatedAnnotation": {"content": box_content(n, human=True)}}
            for i, n in entries
        ]
    )


def auto_annotations(entries: list[tuple[int, int, str]]) -> str:
    """An auto_annotator_output.txt: `<token> <json>` lines for (token, boxes, creation-date)."""
    return "".join(f"{token} {json.dumps(box_content(n, False, created))}\n" for token, n, created in entries)


# -- pure parsing rules ---------------------------------------------------------------------------------------------
def test_iteration_comes_from_the_whole_iteration_dir_name_not_its_last_character():
    base = "out/job/annotations/consolidated-annotation/consolidation-response"
    assert consolidation_iteration(f"{base}/iteration-3/2019-05-17_01:02:03.json") == 3
    assert consolidation_iteration(f"{base}/iteration-12/2019-05-17_01:02:03.json") == 12
    assert consolidation_iteration(f"{base}/not-an-iteration/2019-05-17_01:02:03.json") is None


def test_machine_iteration_is_the_directory_two_levels_above_the_file():
    assert auto_annotation_iteration("job/activelearning/auto-annotation/7/output/auto_annotator_output.txt") == 7
    assert auto_annotation_iteration("job/activelearning/anything/11/x/auto_annotator_output.txt") == 11
    assert auto_annotation_iteration("job/activelearning/auto-annotation/output/auto_annotator_output.txt") is None


def test_each_dataset_object_is_counted_once_in_its_first_iteration():
    human = [
        ("r/iteration-1/2019-05-17_01:00:00.json", json.loads(consolidation([(0, 1), (1, 2)]))),
        ("r/iteration-2/2019-05-17_02:00:00.json", json.loads(consolidation([(1, 5), (2, 3)]))),
    ]
    machine = [("a/3/output/auto_annotator_output.txt", auto_annotations([(7, 2, "2019-05-17T04:00:00.000001")]))]
    rounds = tally_rounds(human, [(k, text.splitlines()) for k, text in machine], "category")
    assert [(r.iteration, r.human_images, r.human_boxes, r.machine_images, r.machine_boxes) for r in rounds] == [
        (1, 2, 3, 0, 0),
        (2, 1, 3, 0, 0),
        (3, 0, 0, 1, 2),
    ]
    assert rounds[1].human_finished_at == "2019-05-17T02:00:00"
    assert rounds[2].machine_finished_at == "2019-05-17T04:00:00.000001"


def test_training_log_yields_sample_count_and_one_map_per_epoch():
    messages = [
        "[05/17/2019 01:02:03 INFO] Final configuration: {u'epochs': u'3', u'num_training_samples': u'190'}",
        "[05/17/2019 01:03:03 INFO] #quality_metric: host=algo-1, epoch=0, validation mAP <score>=(0.125)",
        "unrelated line",
        "[05/17/2019 01:04:03 INFO] #quality_metric: host=algo-1, epoch=1, validation mAP <score>=(nan)",
        "[05/17/2019 01:05:03 INFO] #quality_metric: host=algo-1, epoch=2, validation mAP <score>=(0.5)",
    ]
    assert parse_training_log(messages) == (190, [0.125, None, 0.5])


def test_training_job_name_is_the_third_part_from_the_end_of_the_model_key():
    assert training_job_of("o/job/training/4/algorithm/job-train-4/output/model.tar.gz") == (4, "job-train-4")
    assert training_job_of("o/job/training/4/algorithm/job-train-4/output/other.txt") is None


def test_manifest_line_keeps_pixel_boxes_confidences_and_who_labeled():
    line = {"source-ref": "s3://b/images/0123456789abcdef.jpg", **box_content(2, human=False)}
    label = parse_manifest_line(line, "category")
    assert label.labeled and not label.human_annotated
    assert label.image_id == "0123456789abcdef"
    assert label.boxes == [(0, 5, 20, 30), (10, 5, 20, 30)]
    assert label.confidences == [0.9, 0.9]
    assert (label.width, label.height) == (640, 480)
    failed = parse_manifest_line(
        {"source-ref": "s3://b/x.jpg", "category-metadata": {"failure-reason": "ClientError: too big"}}, "category"
    )
    assert not failed.labeled and failed.failure_reason == "ClientError: too big"


def test_output_uri_is_path_plus_job_name_with_or_without_trailing_slash():
    for path in ("s3://b/exp/output/", "s3://b/exp/output"):
        assert (
            job_output_uri({"OutputConfig": {"S3OutputPath": path}, "LabelingJobName": "j"}) == "s3://b/exp/output/j/"
        )


class PagedLogs:
    """A CloudWatch Logs client whose get_log_events pages three times, then repeats its token (the API's "end")."""

    def __init__(self) -> None:
        self.calls = 0

    def get_paginator(self, name):
        assert name == "describe_log_streams"

        class Paginator:
            def paginate(self, **kwargs):
                assert kwargs["logStreamNamePrefix"] == "job-train-1/"
                yield {"logStreams": [{"logStreamName": "job-train-1/algo-1-1"}]}

        return Paginator()

    def get_log_events(self, **kwargs):
        self.calls += 1
        page = min(int((kwargs.get("nextToken") or "f/0").split("/")[1]), 3)
        events = [{"message": f"line {page}"}] if page < 3 else []
        return {"events": events, "nextForwardToken": f"f/{min(page + 1, 3)}"}


def test_log_events_are_paged_until_the_forward_token_repeats():
    logs = PagedLogs()
    assert read_log_messages(logs, LOG_GROUP, "job-train-1/") == ["line 0", "line 1", "line 2"]
    assert logs.calls == 4  # pages 0, 1, 2, then page 3, whose token is the one we sent: the end


# -- against the emulator's S3 and CloudWatch Logs ------------------------------------------------------------------
@pytest.fixture(scope="module")
def logs(boto_session, emulator):
    client = boto_session.client("logs", endpoint_url=emulator.url)
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName=LOG_GROUP)
    return client


@pytest.fixture(scope="module")
def bucket(s3):
    if BUCKET not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def put_training_log(logs, stream: str, samples: int, maps: list[float]) -> None:
    now = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
    messages = [f"[INFO] Final configuration: {{u'epochs': u'{len(maps)}', u'num_training_samples': u'{samples}'}}"]
    messages += [f"#quality_metric: host=algo-1, epoch={i}, validation mAP <score>=({m})" for i, m in enumerate(maps)]
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": m} for i, m in enumerate(messages)],
    )


def test_reads_a_finished_job_tree_as_the_notebook_would(s3, logs, bucket):
    job = f"job-{uuid.uuid4().hex[:8]}"
    out = f"exp/output/{job}"
    cons = f"{out}/annotations/consolidated-annotation/consolidation-response"
    files = {
        f"{cons}/iteration-1/2019-05-17_01:00:00.json": consolidation([(0, 1), (1, 2)]),
        f"{cons}/iteration-2/2019-05-17_02:00:00.json": consolidation([(2, 1), (3, 0)]),
        f"{cons}/iteration-2/2019-05-17_02:30:00.json": consolidation(
            [(1, 4), (4, 3)]
        ),  # object 1 again: not recounted
        f"{cons}/iteration-10/2019-05-17_10:00:00.json": consolidation([(5, 2)]),
        f"{out}/annotations/worker-response/iteration-1/0/2019-05-17_01:00:00.json": "{}",
        f"{out}/activelearning/auto-annotation/3/output/auto_annotator_output.txt": auto_annotations(
            [(6, 1, "2019-05-17T03:00:00.000000"), (7, 3, "2019-05-17T03:10:00.500000")]
        ),
        f"{out}/activelearning/auto-annotation/10/output/auto_annotator_output.txt": auto_annotations(
            [(8, 2, "2019-05-17T09:00:00.000000")]
        ),
        f"{out}/activelearning/validation/2/validation_input.manifest": '{"source-ref": "s3://b/x.jpg"}\n',
        f"{out}/training/3/algorithm/{job}-train-1/output/model.tar.gz": b"gz",
        f"{out}/training/10/algorithm/{job}-train-10/output/model.tar.gz": b"gz",
        f"{out}/training/10/algorithm/{job}-train-10/output/metrics.json": "{}",
        f"{out}/manifests/output/output.manifest": "".join(
            json.dumps(line) + "\n"
            for line in (
                {"source-ref": "s3://b/img/aaaaaaaaaaaaaaaa.jpg", **box_content(1, human=True)},
                {"source-ref": "s3://b/img/bbbbbbbbbbbbbbbb.jpg", **box_content(3, human=False)},
                {"source-ref": "s3://b/img/cccccccccccccccc.jpg", "category-metadata": {"failure-reason": "too big"}},
            )
        ),
    }
    for key, body in files.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    put_training_log(logs, f"{job}-train-1/algo-1-1558056590", 190, [0.1, 0.2, 0.3])
    put_training_log(logs, f"{job}-train-10/algo-1-1558060000", 450, [0.4, 0.5])

    outputs = read_job_outputs(
        s3,
        logs,
        {
            "LabelingJobName": job,
            "LabelAttributeName": "category",
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/exp/output/"},
            "LabelingJobOutput": {"OutputDatasetS3Uri": f"s3://{bucket}/{out}/manifests/output/output.manifest"},
        },
    )

    assert [
        (r.iteration, r.human_images, r.human_boxes, r.machine_images, r.machine_boxes) for r in outputs.rounds
    ] == [
        (1, 2, 3, 0, 0),
        (2, 3, 4, 0, 0),
        (3, 0, 0, 2, 4),
        (10, 1, 2, 1, 2),
    ]
    assert (outputs.human_images, outputs.machine_images, outputs.iterations) == (6, 3, 10)
    assert outputs.rounds[1].human_finished_at == "2019-05-17T02:30:00"
    assert outputs.rounds[2].machine_finished_at == "2019-05-17T03:10:00.500000"
    # `-train-1` must not pick up `-train-10`'s stream.
    assert [(t.iteration, t.training_job_name, t.num_training_samples, t.validation_map) for t in outputs.training] == [
        (3, f"{job}-train-1", 190, [0.1, 0.2, 0.3]),
        (10, f"{job}-train-10", 450, [0.4, 0.5]),
    ]
    assert [(lb.image_id, lb.labeled, lb.human_annotated, len(lb.boxes)) for lb in outputs.labels] == [
        ("aaaaaaaaaaaaaaaa", True, True, 1),
        ("bbbbbbbbbbbbbbbb", True, False, 3),
        ("cccccccccccccccc", False, False, 0),
    ]
    assert JobOutputs.from_dict(json.loads(json.dumps(outputs.to_dict()))) == outputs


def test_reads_the_emulators_own_output_layout(s3, logs, bucket):
    from emulator.labeling.outputs import Label, OutputWriter
    from emulator.labeling.storage import S3Location, Storage

    job = f"emu-{uuid.uuid4().hex[:8]}"
    storage = Storage()
    writer = OutputWriter(storage, S3Location(bucket, f"emu/output/{job}"), job, "category", ["Bird"])
    ts = time.time()
    human = Label(boxes=[(1, 2, 30, 40), (50, 60, 10, 10)], confidences=[0.8, 0.7], human=True, ts=ts)
    machine = Label(boxes=[(5, 5, 20, 20)], confidences=[0.95], human=False, ts=ts + 60)
    writer.consolidation(1, [(0, writer.label_content(human, 640, 480))], ts)
    writer.consolidation(4, [(2, writer.label_content(human, 640, 480))], ts + 120)
    writer.auto_annotations(4, [(1, writer.label_content(machine, 320, 240))])
    writer.validation_set(3, [{"source-ref": "s3://b/x.jpg"}])
    name = writer.training_job_name(4)
    writer.model_artifact(4, name, b"weights", {"iteration": 4})
    storage.put_log_events(
        "us-east-1",
        LOG_GROUP,
        f"{name}/algo-1-{int(ts)}",
        [
            (ts, "[INFO] Final configuration: {u'num_training_samples': u'1', u'epochs': u'2'}"),
            (ts + 1, "#quality_metric: host=algo-1, epoch=0, validation mAP <score>=(0.25)"),
            (ts + 2, "#quality_metric: host=algo-1, epoch=1, validation mAP <score>=(0.5)"),
        ],
    )
    objects = [("s3://b/img/h0.jpg", human, 640, 480), ("s3://b/img/m1.jpg", machine, 320, 240)]
    manifest = writer.manifest(
        [{"source-ref": ref, **writer.label_content(label, w, h)} for ref, label, w, h in objects], final=True
    )

    outputs = read_job_outputs(
        s3,
        logs,
        {
            "LabelingJobName": job,
            "LabelAttributeName": "category",
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/emu/output/"},
            "LabelingJobOutput": {"OutputDatasetS3Uri": manifest.uri},
        },
    )

    assert outputs.rounds == [
        RoundCounts(1, 1, 2, 0, 0, outputs.rounds[0].human_finished_at, None),
        RoundCounts(4, 1, 2, 1, 1, outputs.rounds[1].human_finished_at, outputs.rounds[1].machine_finished_at),
    ]
    assert outputs.rounds[1].machine_finished_at is not None
    assert [(t.iteration, t.training_job_name, t.num_training_samples, t.validation_map) for t in outputs.training] == [
        (4, name, 1, [0.25, 0.5])
    ]
    assert [(lb.human_annotated, lb.boxes, lb.confidences) for lb in outputs.labels] == [
        (True, [(1, 2, 30, 40), (50, 60, 10, 10)], [0.8, 0.7]),
        (False, [(5, 5, 20, 20)], [0.95]),
    ]


def test_a_job_without_outputs_yet_reads_as_empty(s3, logs, bucket):
    job = f"new-{uuid.uuid4().hex[:8]}"
    outputs = read_job_outputs(
        s3,
        logs,
        {
            "LabelingJobName": job,
            "LabelAttributeName": "category",
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/fresh/"},
            "LabelingJobOutput": {"OutputDatasetS3Uri": f"s3://{bucket}/fresh/{job}/manifests/output/output.manifest"},
        },
    )
    assert (outputs.rounds, outputs.training, outputs.labels, outputs.iterations) == ([], [], [], 0)
    assert outputs.to_dict(include_labels=False) == {
        "job_name": job,
        "output_uri": f"s3://{bucket}/fresh/{job}/",
        "label_attribute": "category",
        "manifest_uri": f"s3://{bucket}/fresh/{job}/manifests/output/output.manifest",
        "rounds": [],
        "training": [],
    }


def test_training_job_without_logs_has_an_empty_curve(s3, bucket, boto_session, emulator):
    job = f"nolog-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=bucket, Key=f"nl/{job}/training/2/algorithm/{job}-t/output/model.tar.gz", Body=b"gz")
    logs = boto_session.client("logs", endpoint_url=emulator.url)
    outputs = read_job_outputs(
        s3,
        logs,
        {
            "LabelingJobName": job,
            "LabelAttributeName": "category",
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/nl"},
        },
    )
    assert [(t.training_job_name, t.num_training_samples, t.validation_map) for t in outputs.training] == [
        (f"{job}-t", None, [])
    ]
