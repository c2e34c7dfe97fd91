"""One `make stack` for the whole browser suite, and the clients the tests drive it with.

`stack` starts scripts/stack.py in a directory under the session's tmp path (a small mirror, the emulator's time
scale raised, every job's status checked each second) and stops it at the end; the suite's last test checks that
`down` leaves no process. The operator's actions go through the browser (Playwright on Debian's Chromium, no browser
download); state is checked through the REST API (`Api`) and the emulator (`sagemaker`, `emulator_admin`).
Screenshots go to reports/e2e/.

The fixtures live for the browser module only: Playwright's sync API keeps an event loop running on the main thread
while it is open, and later tests' `dag.test()` runs triggers with `asyncio.run()`, which refuses to start inside one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from scripts import stack as stackpy

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "reports" / "e2e"

# A 20-image labeling job takes ~2,500 simulated seconds: ~25 s at this scale, long enough to watch it deferred
# and act on it in the UI, short enough for the suite.
TIME_SCALE = 100
MIRROR_IMAGES = 40


def chromium() -> str | None:
    return os.environ.get("GT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def call(url: str, *, data: dict | None = None) -> tuple[int, Any]:
    """An unauthenticated call (GET, or POST with JSON `data`): (status, JSON body, or the text, or None)."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST" if body else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def run_stack(stack_dir: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(REPO / "scripts" / "stack.py"), *args, "--dir", str(stack_dir)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@dataclass
class Stack:
    dir: Path
    up: subprocess.CompletedProcess
    state: dict
    api: str
    emulator: str
    password: str
    aws_secret: str

    def run(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
        return run_stack(self.dir, *args, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    if not stackpy.can_install_packages():
        pytest.skip(
            "postgresql/redis-server are not installed and cannot be installed here "
            "(needs apt-get, as root or with passwordless sudo)"
        )
    if not chromium():
        pytest.skip("no Chromium (`make test` installs Debian's chromium package; or set GT_CHROMIUM)")
    stack_dir = tmp_path_factory.mktemp("e2e") / ".stack"
    up = run_stack(
        stack_dir,
        "up",
        "--images",
        str(MIRROR_IMAGES),
        "--time-scale",
        str(TIME_SCALE),
        "--check-interval",
        "1",
        "--timeout",
        "300",
    )
    state_file = stack_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    try:
        assert up.returncode == 0, f"`stack.py up` failed:\n{up.stdout}\n{up.stderr}"
        secrets = json.loads((stack_dir / "secrets.json").read_text())
        password = json.loads((stack_dir / "airflow" / "simple_auth_manager_passwords.json.generated").read_text())
        yield Stack(
            dir=stack_dir,
            up=up,
            state=state,
            api=state["urls"]["api"],
            emulator=state["urls"]["emulator"],
            password=password["admin"],
            aws_secret=secrets["aws_secret_access_key"],
        )
    finally:
        if json.loads(state_file.read_text()).get("procs") if state_file.exists() else False:
            run_stack(stack_dir, "down", timeout=150)  # the suite's last test normally did it already


class Api:
    """The Airflow REST API with a bearer token, as the tests' eyes on state (actions go through the browser)."""

    def __init__(self, base: str, password: str) -> None:
        self.base = base
        status, body = self.call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        assert status == 201, (status, body)
        self.token = body["access_token"]

    def call(self, method: str, path: str, data: dict | None = None, auth: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(self.base + path, data=body, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}")

    def state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        return self.ti(dag_id, run_id, task_id)["state"]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after")["dag_runs"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(path + "?deserialize=true")["value"]


@pytest.fixture(scope="module")
def api(stack) -> Api:
    return Api(stack.api, stack.password)


@pytest.fixture(scope="module")
def sagemaker(stack):
    import boto3

    return boto3.client(
        "sagemaker",
        endpoint_url=stack.emulator,
        region_name="us-east-1",
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",  # the emulator takes any credentials
    )


@pytest.fixture(scope="module")
def s3(stack):
    import boto3

    return boto3.client(
        "s3", endpoint_url=stack.emulator, region_name="us-east-1", aws_access_key_id="e2e", aws_secret_access_key="e2e"
    )


class EmulatorAdmin:
    def __init__(self, base: str) -> None:
        self.base = base

    def faults(self, **rule: Any) -> dict:
        """Replace the fault rule (a POST replaces the whole rule: pass every field wanted)."""
        request = urllib.request.Request(
            f"{self.base}/_emulator/faults",
            data=json.dumps(rule).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def emulator_admin(stack) -> EmulatorAdmin:
    return EmulatorAdmin(stack.emulator)


@pytest.fixture(scope="module")
def browser(stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser, stack):
    """One logged-in browser tab for the suite. The AWS console links go nowhere from here (no internet): their
    requests are answered with a stub page, so following a link shows where it leads."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.route(
        re.compile(r"^https://([a-z0-9-]+\.)*console\.aws\.amazon\.com/.*"),
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>AWS console (stub)</h1>"),
    )
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(autouse=True)
def blank_page_after(request):
    """After each test the tab leaves the Airflow UI: a page left open on a running DAG re-renders it at every
    auto-refresh, and Chromium's renderer would take half a core from the rest of the suite."""
    yield
    if "page" in request.fixturenames:
        request.getfixturevalue("page").goto("about:blank")


@pytest.fixture(scope="session")
def shot() -> Callable[[Any, str], Path]:
    SHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, **kwargs: Any) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return save
