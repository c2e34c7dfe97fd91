from __future__ import annotations

import csv
import io
import json

import pytest

from groundtruth.openimages import class_subtree


@pytest.fixture(scope="session")
def sagemaker(boto_session, emulator):
    return boto_session.client("sagemaker", endpoint_url=emulator.url)


@pytest.fixture(scope="session")
def backend(emulator):
    return emulator.app.labeling


@pytest.fixture(scope="session")
def bird_keys(s3, mirror):
    """Keys of the mirror's bird images of at most 6 MB, in the annotation file's order."""
    body = s3.get_object(Bucket="open-images-dataset", Key="annotations/test-annotations-bbox.csv")["Body"].read()
    tree = s3.get_object(Bucket="open-images-dataset", Key="annotations/bbox_labels_600_hierarchy.json")
    hierarchy_birds = class_subtree(json.loads(tree["Body"].read()), "/m/015p6")
    keys: list[str] = []
    seen = set()
    for row in csv.DictReader(io.StringIO(body.decode())):
        if row["LabelName"] in hierarchy_birds and row["ImageID"] not in seen:
            seen.add(row["ImageID"])
            key = f"test/{row['ImageID']}.jpg"
            if s3.head_object(Bucket="open-images-dataset", Key=key)["ContentLength"] <= 6 * 1024 * 1024:
                keys.append(key)
    return keys
