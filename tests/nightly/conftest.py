"""Nightly labeling against the in-process emulator: a small mirror of its own and a per-test chain.

`include/nightly/birds.yaml` labels 1,250 images per shard, the least Ground Truth (and the emulator) auto-labels,
so that every night adds a model to the chain. The tests keep that file and change only its scale: 30-image shards,
a 10-task human batch, a 0.2 s status check, and the emulator's auto-labeling minimum lowered to 20 objects for the
test (`fast_auto_labeling`), so a shard's job trains a model in seconds. Every test gets its own chain (prefix).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIRDS = REPO / "include" / "nightly" / "birds.yaml"
DAG_ID = "nightly_labeling_birds"
MIRROR_BUCKET = "open-images-nightly"
MIRROR_BIRDS = 150  # five 30-image shards
SHARD_SIZE = 30
TEST_SCALE = {
    "check_interval_seconds": 0.2,
    "max_concurrent_tasks": 10,
    "budget_usd": 10,  # 30 x (0.08 + 3 x 0.036) = $5.64 worst case per shard
    "bucket": "gt-nightly-tests",
}


@pytest.fixture(scope="session")
def nightly_mirror(emulator):
    from emulator.sim.openimages import seed_openimages

    seed_openimages(emulator.url, images=MIRROR_BIRDS, seed=11, bucket=MIRROR_BUCKET)
    return MIRROR_BUCKET


@pytest.fixture
def fast_auto_labeling(monkeypatch):
    """The emulator auto-labels from 20 objects instead of 1,250 (raises if the emulator renames the constant)."""
    import emulator.labeling.runner as runner

    monkeypatch.setattr(runner, "MIN_OBJECTS_FOR_AUTO_LABELING", 20)


def write_test_include(root: Path, **overrides) -> Path:
    """An include dir holding birds.yaml at test scale (plus the real experiments, so the other DAG still loads)."""
    config = yaml.safe_load(BIRDS.read_text())
    config.update(TEST_SCALE)
    config["shards"]["source"]["bucket"] = MIRROR_BUCKET
    config["shards"]["images_per_shard"] = SHARD_SIZE
    config["prefix"] = f"nightly-tests/{uuid.uuid4().hex[:8]}"
    for key, value in overrides.items():
        config[key] = value
    (root / "nightly").mkdir(parents=True, exist_ok=True)
    (root / "nightly" / "birds.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if not (root / "experiments").exists():
        (root / "experiments").symlink_to(REPO / "include" / "experiments")
    return root


@pytest.fixture
def chain(airflow_db, nightly_mirror, fast_auto_labeling, monkeypatch, tmp_path):
    """The nightly DAG of a fresh chain (its own prefix) at test scale, and helpers to run and inspect it."""
    include = write_test_include(tmp_path / "include")
    monkeypatch.setenv("GT_INCLUDE_DIR", str(include))
    return Chain(include)


class Chain:
    def __init__(self, include: Path):
        self.include = include
        self.config = yaml.safe_load((include / "nightly" / "birds.yaml").read_text())

    @property
    def prefix(self) -> str:
        return self.config["prefix"]

    @property
    def bucket(self) -> str:
        return self.config["bucket"]

    def dag(self):
        from airflow.dag_processing.dagbag import DagBag

        from tests.conftest import DAGS_HOME

        assert os.environ["GT_INCLUDE_DIR"] == str(self.include)
        # Only this DAG file: other tests add DAG files of their own to the session's folder.
        bag = DagBag(dag_folder=str(DAGS_HOME / "nightly_labeling.py"))
        assert not bag.import_errors, bag.import_errors
        return bag.dags[DAG_ID]

    def run(self, when, **conf):
        return self.dag().test(logical_date=when, run_after=when, run_conf=conf or None)

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, "birds", *parts])


def states(dagrun) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def xcom(dagrun, task_id: str, key: str = "return_value"):
    return dagrun.get_task_instance(task_id).xcom_pull(task_ids=task_id, key=key)
