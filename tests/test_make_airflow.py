"""`make airflow` from a fresh shell: no venv activated, yet standalone's scheduler, dag-processor, triggerer and
api-server all start (they are `airflow ...` subprocesses, found through PATH) and the UI answers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from scripts.airflow_processes import stop_process_group

REPO = Path(__file__).resolve().parent.parent
SERVICES = ("scheduler", "triggerer", "dag_processor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


@pytest.mark.slow
def test_make_airflow_starts_every_service_and_serves_the_ui(emulator, tmp_path):
    port = free_port()
    # What a newcomer's shell has: system PATH only (the venv is not activated), the emulator's URL.
    env = {
        "PATH": os.pathsep.join([str(Path(sys._base_executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(tmp_path),
        "EMULATOR_URL": emulator.url,
        "GT_AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__API__PORT": str(port),
    }
    log_path = tmp_path / "make-airflow.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            ["make", "-s", "airflow"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        state = None
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline and proc.poll() is None:
            state = health(port)
            if state and all((state.get(s) or {}).get("status") == "healthy" for s in SERVICES):
                break
            time.sleep(2)  # polling for readiness; nothing is timed
        output = log_path.read_text()
        assert proc.poll() is None, f"make airflow exited:\n{output[-3000:]}"
        assert state and all((state.get(s) or {}).get("status") == "healthy" for s in SERVICES), (state, output[-3000:])
        assert "FileNotFoundError" not in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        assert f"Airflow UI: http://localhost:{port}" in output
    finally:
        stop_process_group(proc, grace=60)
