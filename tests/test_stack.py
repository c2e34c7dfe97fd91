"""`make stack` / `make stack-down` (scripts/stack.py): the compose topology as local processes.

The end-to-end test starts a real stack in a directory under tmp_path (Postgres, Redis, the five Airflow
components on CeleryExecutor, the seeded emulator), checks what a user relies on (health, the login being required,
the project's DAGs parsed, `up` being idempotent), stops it and checks by pid and by the stack's environment marker
that none of its processes is left. It needs Debian's postgresql and redis-server, which `up` installs when they are
missing: it is skipped, saying so, only where they are missing and cannot be installed (no apt-get, no root and no
passwordless sudo).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("gt_stack", REPO / "scripts" / "stack.py")
stack = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stack)

DAG_ID = "labeling_experiment_birds"


def call(url: str, *, token: str | None = None, data: dict | None = None) -> tuple[int, dict | None]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def run_stack(command: str, stack_dir: Path, timeout: float) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(REPO / "scripts" / "stack.py"), command, "--dir", str(stack_dir)]
    # a small mirror: seeding 2,500 images is the default's slowest step and tells nothing more here
    argv += ["--images", "40", "--timeout", "240"] if command == "up" else []
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_compose_and_the_stack_share_one_airflow_env_file():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    common = compose["x-airflow-common"]
    assert common["env_file"] == ["deploy/airflow.env"]
    shared = stack.read_env_file()
    assert shared["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    # one place for each setting: nothing in the shared file is repeated (or contradicted) by compose
    assert not set(shared) & set(common["environment"])
    for name in ("airflow-scheduler", "airflow-worker", "airflow-init"):
        assert not set(shared) & set(compose["services"][name]["environment"]), name
    # no URL or host in the shared file: those are each side's own
    for key, value in shared.items():
        assert not any(word in value for word in ("://", "127.0.0.1", "localhost", "postgres", "redis")), key


@pytest.mark.slow
@pytest.mark.timeout(420)
@pytest.mark.skipif(
    not stack.can_install_packages(),
    reason="postgresql/redis-server are not installed and cannot be installed here "
    "(needs apt-get, as root or with passwordless sudo)",
)
def test_stack_up_is_healthy_guarded_parses_the_dags_and_down_leaves_nothing(tmp_path):
    stack_dir = tmp_path / ".stack"
    started = time.monotonic()
    up = run_stack("up", stack_dir, timeout=300)
    state = json.loads((stack_dir / "state.json").read_text()) if (stack_dir / "state.json").exists() else {}
    procs = dict(state.get("procs", {}))
    try:
        assert up.returncode == 0, f"`stack.py up` failed:\n{up.stdout}\n{up.stderr}"
        assert set(procs) == {"postgres", "redis", "emulator", *stack.AIRFLOW}
        api, emulator = state["urls"]["api"], state["urls"]["emulator"]
        assert api in up.stdout and emulator in up.stdout and "simple_auth_manager_passwords" in up.stdout

        status, health = call(f"{api}/api/v2/monitor/health")
        assert status == 200, status
        for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
            assert health[component]["status"] == "healthy", health
        assert call(f"{emulator}/_emulator/health")[0] == 200

        # the API wants a login ...
        assert call(f"{api}/api/v2/dags")[0] in (401, 403)
        # ... which the printed passwords file gives
        password = json.loads((stack_dir / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        status, login = call(f"{api}/auth/token", data={"username": "admin", "password": password["admin"]})
        assert status == 201, status
        token = login["access_token"]

        # the dag-processor parses the project's DAGs into the stack's own metadata DB
        dag = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            status, dag = call(f"{api}/api/v2/dags/{DAG_ID}", token=token)
            if status == 200:
                break
            time.sleep(1)  # polling until the first parse lands; nothing is timed
        assert status == 200 and dag["dag_id"] == DAG_ID and dag["is_paused"], (status, dag)
        status, errors = call(f"{api}/api/v2/importErrors", token=token)
        assert status == 200 and errors["total_entries"] == 0, errors

        again = run_stack("up", stack_dir, timeout=120)
        assert again.returncode == 0 and "already up and healthy" in again.stdout, again.stdout + again.stderr
        assert json.loads((stack_dir / "state.json").read_text())["procs"] == procs  # nothing restarted
        print(f"stack healthy and checked in {time.monotonic() - started:.0f} s")
    finally:
        down = run_stack("down", stack_dir, timeout=150)
    assert down.returncode == 0, down.stdout + down.stderr
    assert procs, "up recorded no process"
    assert [name for name, record in procs.items() if stack.is_ours(record)] == []
    assert stack.marked(state["id"]) == set()
    assert (stack_dir / "logs" / "scheduler.log").stat().st_size > 0  # logs are kept
