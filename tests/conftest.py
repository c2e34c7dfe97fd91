"""Session-wide test environment: an isolated Airflow home and an in-process emulator on loopback.

The environment is set at import time, before anything imports Airflow, so Airflow's configuration reads it.
No test reaches beyond loopback: real AWS credentials and profiles are removed from the environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scripts.airflow_processes import aws_conn_uri

REPO = Path(__file__).resolve().parent.parent
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="gt-airflow-home-"))
# One DAGs folder for the whole session (Airflow's bundle manager keeps the first one it sees): the project's DAG
# files, linked, plus whatever DAG files tests add. The factories find include/ through GT_INCLUDE_DIR.
DAGS_HOME = AIRFLOW_HOME / "dags"
DAGS_HOME.mkdir()
for dag_file in (REPO / "dags").glob("*.py"):
    (DAGS_HOME / dag_file.name).symlink_to(dag_file)

for var in list(os.environ):
    if var.startswith(("AWS_", "AIRFLOW_CONN_", "AIRFLOW__")):
        del os.environ[var]
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_HOME),
        "GT_INCLUDE_DIR": str(REPO / "include"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(AIRFLOW_HOME / "logs"),
        # Dummy credentials for the emulator; the shared config/credentials files are never read.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "MPLBACKEND": "Agg",
    }
)
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


@pytest.fixture(scope="session")
def emulator():
    """One emulator for the whole session, in this process (so tests can also look at its state directly)."""
    from emulator.app import build_app
    from emulator.server import EmulatorServer

    server = EmulatorServer("127.0.0.1", 0, build_app(time_scale=float(os.environ.get("GT_TEST_TIME_SCALE", "1e6"))))
    server.start()
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = aws_conn_uri(server.url)
    os.environ["GT_EMULATOR_URL"] = server.url
    yield server
    server.stop()


@pytest.fixture(scope="session")
def boto_session(emulator):
    import boto3

    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture(scope="session")
def s3(boto_session, emulator):
    return boto_session.client("s3", endpoint_url=emulator.url)


@pytest.fixture(scope="session")
def mirror(emulator):
    """The synthetic Open Images mirror (2,500 birds of at most 6 MB, plus others), seeded once per session."""
    from emulator.sim.openimages import seed_openimages

    return seed_openimages(emulator.url, images=2500, seed=0)


@pytest.fixture(scope="session")
def airflow_db():
    """`airflow db migrate` once per session, into the isolated SQLite database."""
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, env=os.environ.copy(), timeout=300)
    return AIRFLOW_HOME


# The files that take minutes, longest first. `make test` runs the suite on two pytest-xdist workers, one file per
# worker at a time (`--dist loadfile --no-loadscope-reorder`): these start first and the short files fill in around
# them, so neither worker is left with a long file at the end. Any other order runs the same tests.
LONG_FILES = (
    "tests/emulator/test_seed_experiment.py",
    "tests/e2e/test_operator_ui.py",
    "tests/integration/test_active_learning_dag.py",
    "tests/nightly/test_nightly_dag.py",
    "tests/integration/test_active_learning_scheduler.py",
    "tests/nightly/test_backfill.py",
    "tests/integration/test_labeling_operator.py",
    "tests/integration/test_experiment_dag.py",
    "tests/integration/test_job_operators.py",
    "tests/test_make_airflow.py",
    "tests/emulator/test_labeling_api.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(LONG_FILES)))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)
