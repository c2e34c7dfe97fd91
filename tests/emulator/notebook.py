"""The seed notebook's "Post-Process Job" cells, kept as the notebook has them, run on a job's outputs.

Only the shell escapes (`!aws s3 cp ... --recursive`, `!aws s3 ls ... --recursive`) are replaced by equivalent boto3
calls; the parsing below is the notebook's own logic, so a pass here means the notebook reads our outputs unchanged.
"""

from __future__ import annotations

import glob
import json
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path


def _download(s3, s3_prefix_uri: str, dest: Path) -> None:
    bucket, prefix = s3_prefix_uri[5:].split("/", 1)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())


def _ls_recursive(s3, s3_prefix_uri: str) -> list[str]:
    bucket, prefix = s3_prefix_uri[5:].split("/", 1)
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            lines.append(f"2019-04-09 12:00:00 {obj['Size']:>10} {obj['Key']}")
    return lines


def post_process(sagemaker, s3, logclient, job_name: str, workdir: Path) -> dict:
    S3_OUTPUT = sagemaker.describe_labeling_job(LabelingJobName=job_name)["OutputConfig"]["S3OutputPath"] + job_name
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        os.makedirs("od_output_data/", exist_ok=False)
        _download(
            s3,
            S3_OUTPUT + "/annotations/consolidated-annotation/consolidation-response",
            Path("od_output_data/consolidation-response"),
        )
        consolidated_nboxes = defaultdict(int)
        consolidated_nims = defaultdict(int)
        consolidation_times = {}
        obj_ids = set()

        for consolidated_fname in glob.glob("od_output_data/consolidation-response/**", recursive=True):
            if consolidated_fname.endswith("json"):
                iter_id = int(consolidated_fname.split("/")[-2][-1])
                # Store the time of the most recent consolidation event as iteration time.
                iter_time = datetime.strptime(consolidated_fname.split("/")[-1], "%Y-%m-%d_%H:%M:%S.json")
                if iter_id in consolidation_times:
                    consolidation_times[iter_id] = max(consolidation_times[iter_id], iter_time)
                else:
                    consolidation_times[iter_id] = iter_time
                with open(consolidated_fname) as f:
                    consolidated_data = json.load(f)
                for consolidation in consolidated_data:
                    obj_id = consolidation["datasetObjectId"]
                    n_boxes = len(consolidation["consolidatedAnnotation"]["content"]["category"]["annotations"])
                    if obj_id not in obj_ids:
                        obj_ids.add(obj_id)
                        consolidated_nims[iter_id] += 1
                        consolidated_nboxes[iter_id] += n_boxes

        total_human_labels = sum(consolidated_nims.values())

        _download(s3, S3_OUTPUT + "/activelearning", Path("od_output_data/activelearning"))
        auto_nboxes = defaultdict(int)
        auto_nims = defaultdict(int)
        auto_times = {}

        for auto_fname in glob.glob("od_output_data/activelearning/**", recursive=True):
            if auto_fname.endswith("auto_annotator_output.txt"):
                iter_id = int(auto_fname.split("/")[-3])
                with open(auto_fname) as f:
                    annots = [" ".join(line.split()[1:]) for line in f.readlines()]
                auto_nims[iter_id] += len(annots)
                for annot in annots:
                    annot = json.loads(annot)
                    time_str = annot["category-metadata"]["creation-date"]
                    auto_time = datetime.strptime(time_str, "%Y-%m-%dT%H:%M:%S.%f")
                    n_boxes = len(annot["category"]["annotations"])
                    auto_nboxes[iter_id] += n_boxes
                    if iter_id in auto_times:
                        auto_times[iter_id] = max(auto_times[iter_id], auto_time)
                    else:
                        auto_times[iter_id] = auto_time

        total_auto_labels = sum(auto_nims.values())
        n_iters = max(len(auto_times), len(consolidation_times))

        def get_training_job_data(training_job_name):
            log_group_name = "/aws/sagemaker/TrainingJobs"
            log_stream_name = logclient.describe_log_streams(
                logGroupName=log_group_name, logStreamNamePrefix=training_job_name
            )["logStreams"][0]["logStreamName"]
            train_log = logclient.get_log_events(
                logGroupName=log_group_name, logStreamName=log_stream_name, startFromHead=True
            )
            events = train_log["events"]
            next_token = train_log["nextForwardToken"]
            while True:
                train_log = logclient.get_log_events(
                    logGroupName=log_group_name,
                    logStreamName=log_stream_name,
                    startFromHead=True,
                    nextToken=next_token,
                )
                if train_log["nextForwardToken"] == next_token:
                    break
                events = events + train_log["events"]
                next_token = train_log["nextForwardToken"]

            mAPs = []
            for event in events:
                msg = event["message"]
                if "Final configuration" in msg:
                    num_samples = int(msg.split("num_training_samples': u'")[1].split("'")[0])
                elif "validation mAP <score>=(" in msg:
                    mAPs.append(float(msg.split("validation mAP <score>=(")[1][:-1]))
            return num_samples, mAPs

        training_data = _ls_recursive(s3, S3_OUTPUT + "/training/")
        training_sizes = []
        training_mAPs = []
        training_iters = []
        for line in training_data:
            if line.split("/")[-1] == "model.tar.gz":
                training_job_name = line.split("/")[-3]
                n_samples, mAPs = get_training_job_data(training_job_name)
                training_sizes.append(n_samples)
                training_mAPs.append(mAPs)
                training_iters.append(int(line.split("/")[-5]))
    finally:
        os.chdir(cwd)
    return {
        "human_images": total_human_labels,
        "human_boxes": sum(consolidated_nboxes.values()),
        "machine_images": total_auto_labels,
        "machine_boxes": sum(auto_nboxes.values()),
        "n_iters": n_iters,
        "human_per_iteration": dict(consolidated_nims),
        "machine_per_iteration": dict(auto_nims),
        "training_sizes": training_sizes,
        "training_mAPs": training_mAPs,
        "training_iters": training_iters,
    }
