"""Airflow-level tests: real DAG runs (`dag.test()`) against the in-process emulator."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from emulator.clock import SimClock
from emulator.sim.openimages import seed_openimages
from tests.emulator.helpers import prepare_experiment

THIRD_PARTY_DAG = '''
"""Someone else's DAG: only our operator and a raw CreateLabelingJob request."""
import json
import os
from datetime import datetime

from airflow.sdk import DAG
from groundtruth.operators import CreateLabelingJobOperator

REQUEST = json.loads(os.environ.get("GT_TEST_REQUEST") or "{}")  # other tests parse this folder without one

with DAG("third_party_labeling", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
         default_args={"owner": "someone-else", "retries": 0}, doc_md="third party", tags=["test"]) as dag:
    CreateLabelingJobOperator(
        task_id="label",
        config=REQUEST,
        deferrable=os.environ.get("GT_TEST_DEFERRABLE", "1") == "1",
        wait_for_completion=os.environ.get("GT_TEST_WAIT", "1") == "1",
        check_interval=float(os.environ.get("GT_TEST_CHECK_INTERVAL", "0.2")),
    )
'''


@pytest.fixture(scope="session")
def small_mirror(emulator):
    """A small mirror of its own (seed 7), so these tests don't need the 2,500-image one."""
    seed_openimages(emulator.url, images=60, seed=7, bucket="open-images-small")
    return "open-images-small"


@pytest.fixture(scope="session")
def small_inputs(s3, small_mirror):
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=small_mirror, Prefix="test/")["Contents"]
        if o["Size"] <= 6 * 1024 * 1024
    ][:20]
    return prepare_experiment(s3, "integration-tests", keys, source_bucket=small_mirror)


@pytest.fixture(scope="session")
def dag_folder(airflow_db):
    """The session's DAGs folder (see tests/conftest.py) with the third-party DAG added."""
    from tests.conftest import DAGS_HOME

    (DAGS_HOME / "third_party.py").write_text(THIRD_PARTY_DAG)
    return DAGS_HOME


def load_dag(folder: Path, dag_id: str = "third_party_labeling"):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


class HeldClock(SimClock):
    """Jobs run at full speed until `hold()`; then their next wait blocks until `release()` or a stop."""

    def __init__(self) -> None:
        super().__init__(1e9)
        self._open = threading.Event()
        self._open.set()
        self.holding = threading.Event()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait(self, sim_seconds, interrupt):
        if not self._open.is_set():
            self.holding.set()
            while not self._open.wait(0.05):  # re-check the stop request while held
                if interrupt.is_set():
                    return True
        return interrupt.is_set()


@pytest.fixture
def held_clock(backend):
    clock, backend.clock = backend.clock, HeldClock()
    yield backend.clock
    backend.clock.release()
    backend.clock = clock


@pytest.fixture
def backend(emulator):
    return emulator.app.labeling


@pytest.fixture
def sagemaker(boto_session, emulator):
    return boto_session.client("sagemaker", endpoint_url=emulator.url)


def env_request(monkeypatch, request: dict) -> None:
    import json

    monkeypatch.setenv("GT_TEST_REQUEST", json.dumps(request))
