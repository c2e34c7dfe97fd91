"""`make stack` / `make stack-down` (scripts/stack.py): the compose topology as local processes.

The real stack is started once, for the browser suite in tests/e2e/: its first test checks what a user relies on
(health, the login being required, the project's DAGs parsed, `up` being idempotent) and its last one that `down`
leaves no process (by pid and by the stack's environment marker). Here: what needs no running stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from scripts import stack

REPO = Path(__file__).resolve().parent.parent


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


def test_service_commands_take_one_airflow_component(tmp_path, capsys):
    with pytest.raises(SystemExit):
        stack.main(["stop", "--dir", str(tmp_path)])  # which one?
    with pytest.raises(SystemExit):
        stack.main(["up", "worker", "--dir", str(tmp_path)])
    assert stack.main(["restart", "postgres", "--dir", str(tmp_path)]) == 2
    assert "not 'postgres'" in capsys.readouterr().out
    assert stack.main(["start", "triggerer", "--dir", str(tmp_path)]) == 2  # nothing running there
    assert "`up` first" in capsys.readouterr().out
    airflow = stack.Stack(tmp_path)
    airflow.state = {"ports": {"api": 8080}, "id": "0" * 32}
    assert [stack.airflow_argv(airflow, name)[1] for name in stack.AIRFLOW] == [
        "api-server", "scheduler", "dag-processor", "triggerer", "celery",
    ]  # fmt: skip


def test_options_reach_the_airflow_env_and_the_aws_secret_is_random(tmp_path):
    one = stack.Stack(tmp_path / "one", check_interval=1)
    one.root.mkdir()
    one.state = {"ports": dict.fromkeys(("api", "emulator", "postgres", "redis", "scheduler_health"), 1), "id": "x"}
    one.state["check_interval"] = one.check_interval
    env = one.airflow_env()
    assert env["GT_CHECK_INTERVAL_SECONDS"] == "1"
    secret = one.secrets()["aws_secret_access_key"]
    assert len(secret) >= 30 and secret in env["AIRFLOW_CONN_AWS_DEFAULT"]
    assert one.secrets() == json.loads((one.root / "secrets.json").read_text())  # kept, not drawn again
    two = stack.Stack(tmp_path / "two")
    two.root.mkdir()
    assert two.secrets()["aws_secret_access_key"] != secret
