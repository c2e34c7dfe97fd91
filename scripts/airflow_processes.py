"""Airflow's own processes as subprocesses: a real scheduler (LocalExecutor), triggerer and API server in an Airflow
home of their own, against an AWS endpoint (the emulator). `make demo`, the scheduler tests and bench/worker_slots.py
run DAGs on them.

Airflow 3's task processes talk to the Execution API, not to the database, so an API server always runs
(`--apps execution`, or every app when the caller also uses the public REST API as the UI does); every process shares
the JWT secret. SQLite is accepted by LocalExecutor in Airflow 3.3 (`airflow standalone` uses the same pairing);
with parallelism 2 it serves 2 cores. The scheduler creates no scheduled runs (`use_job_schedule` off): the runs the
caller creates (backfill, trigger) are the only ones. The public API, when served, trusts every caller as admin
(SimpleAuthManager's all-admins mode), so it is for a home on loopback that only its caller uses.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).parent / "airflow")
T = TypeVar("T")


def aws_conn_uri(endpoint_url: str, region: str = "us-east-1", key: str = "testing") -> str:
    """The `aws_default` connection to a local endpoint (the emulator takes any key; `key` is not a secret)."""
    return f"aws://{key}:{key}@/?region_name={region}&endpoint_url={quote(endpoint_url, safe='')}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll(what: str, check: Callable[[], T], deadline: float = 180, interval: float = 0.5) -> T:
    """check() until it returns something truthy; fail naming `what` at the deadline."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        time.sleep(interval)


def stop_process_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group a test started (`start_new_session=True`), SIGKILL if it outlives `grace`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class AirflowProcesses:
    """One Airflow home under `root` (SQLite, LocalExecutor, the given DAG files, `include` as GT_INCLUDE_DIR) and
    the processes started in it; `close()` (or leaving the `with` block) stops every one of them.

    `home` instead of `root`: that Airflow home itself, kept between uses (its database and logs), with the repository's
    whole dags/ folder unless `dag_files` names some; `process_logs`: where the processes' own logs go (default: the
    home)."""

    def __init__(
        self,
        root: Path | None,
        dag_files: Iterable[str] | None,
        include: Path,
        emulator_url: str,
        public_api: bool = False,
        env: dict[str, str] | None = None,
        home: Path | None = None,
        process_logs: Path | None = None,
    ) -> None:
        if (root is None) == (home is None):
            raise ValueError("give either root (a fresh home under it) or home (an Airflow home to reuse)")
        self.home = home if home is not None else root / "airflow"
        self.home.mkdir(parents=True, exist_ok=home is not None)
        if dag_files is None:
            dags = REPO / "dags"
        else:
            dags = self.home / "dags"
            dags.mkdir(exist_ok=home is not None)
            for name in dag_files:
                link = dags / name
                if not link.is_symlink():
                    link.symlink_to(REPO / "dags" / name)
        self.process_logs = process_logs or self.home
        self.process_logs.mkdir(parents=True, exist_ok=True)
        self.db = self.home / "airflow.db"
        self.port = free_port()
        self.public_api = public_api
        self.procs: list[subprocess.Popen] = []
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AWS_"))}
        self.env = {
            **base,
            # task processes are started as `airflow ...`: the venv's bin/ on PATH even when no one activated it
            "PATH": os.pathsep.join([str(Path(AIRFLOW).parent), base.get("PATH", "")]),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            # Several processes share the file: wait for its lock instead of failing at SQLite's 5 s default.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}?timeout=30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_AWS_DEFAULT": aws_conn_uri(emulator_url),
            # the endpoint's key in the connection, nothing from the machine's own AWS config or instance role
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "GT_INCLUDE_DIR": str(include),
            "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
            **(env or {}),
        }

    # -- the CLI and the processes ------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 180) -> str:
        return self.wait_cli(self.start_cli(*args), timeout)

    def start_cli(self, *args: str) -> subprocess.Popen:
        """`airflow *args` in the background; `wait_cli` takes its output (and fails naming it if it failed)."""
        return subprocess.Popen(
            [AIRFLOW, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @staticmethod
    def wait_cli(proc: subprocess.Popen, timeout: float = 180) -> str:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        command = " ".join(proc.args[1:])
        assert proc.returncode == 0, f"airflow {command} failed ({proc.returncode}):\n{out[-3000:]}\n{err[-3000:]}"
        return out

    def prepare(self) -> None:
        """Migrate the database and serialize the DAGs (before any process starts, so nothing races for SQLite)."""
        self.cli("db", "migrate", timeout=300)
        self.cli("dags", "reserialize")

    def start(self, *args: str) -> subprocess.Popen:
        with (self.process_logs / f"{args[0]}.log").open("w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [AIRFLOW, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def start_api_server(self) -> None:
        apps = "all" if self.public_api else "execution"
        # loopback only: the public API of this home trusts every caller as admin
        self.start("api-server", "--apps", apps, "--host", "127.0.0.1", "--port", str(self.port), "-w", "1")
        health = f"{self.base_url}/execution/health"

        def up() -> bool:
            try:
                return urllib.request.urlopen(health, timeout=2).status == 200  # noqa: S310 - loopback
            except OSError:
                return False

        poll("the API server", up, deadline=90)

    def start_scheduler_and_triggerer(self) -> None:
        self.start("scheduler")
        self.start("triggerer")

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        stop_process_group(proc, grace=20)

    def close(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()

    def __enter__(self) -> AirflowProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def task_log_folder(self, dag_id: str, run_id: str, task_id: str) -> Path:
        """Where Airflow's default log template puts a task instance's tries (and their triggers' logs)."""
        return self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1, trigger: bool = False) -> str:
        """A task try's log, or with `trigger` its triggers' logs (the triggerer writes them beside the try's, as
        `attempt=N.log.trigger.<job id>.log`); "" before any exists."""
        folder = self.task_log_folder(dag_id, run_id, task_id)
        paths = (
            sorted(folder.glob(f"attempt={attempt}.log.trigger.*.log"))
            if trigger
            else [folder / f"attempt={attempt}.log"]
        )
        return "".join(path.read_text() for path in paths if path.exists())

    def print_logs(self, chars: int = 4000, task_log_contains: str | None = None) -> None:
        """The processes' logs' ends (for a failing test's output), and the task logs whose path contains
        `task_log_contains` (a deferred task's trigger writes into its task's log)."""
        for log in sorted(self.process_logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-chars:]}")
        if task_log_contains:
            for log in sorted((self.home / "logs").rglob("*.log")):
                if task_log_contains in str(log):
                    print(f"--- {log.relative_to(self.home)}\n{log.read_text()[-chars:]}")

    def print_failed_task_logs(self, dag_id: str, chars: int = 6000) -> None:
        """For every failed task instance of `dag_id`: each of its tries' logs and trigger logs (a try the scheduler
        failed without running it has none), and the processes' log lines that name it (the scheduler says why it
        failed a task it did not run: a heartbeat timeout, an executor's report)."""
        failed = self.sql(
            "SELECT run_id, task_id, try_number FROM task_instance WHERE dag_id = ? AND state = 'failed'", dag_id
        )
        for run_id, task_id, try_number in failed:
            print(f"--- failed {dag_id} {run_id} {task_id} (try_number {try_number})")
            folder = self.task_log_folder(dag_id, run_id, task_id)
            logs = sorted(folder.glob("attempt=*.log*")) if folder.is_dir() else []
            for path in logs:
                print(f"--- {path.relative_to(self.home)}\n{path.read_text(errors='replace')[-chars:]}")
            if not logs:
                print(f"(no task log under {folder})")
            for log in sorted(self.process_logs.glob("*.log")):
                lines = [
                    line
                    for line in log.read_text(errors="replace").splitlines()
                    if task_id in line and (run_id in line or dag_id in line)
                ]
                if lines:
                    print(f"--- {log.name}, lines naming {task_id}\n" + "\n".join(lines[-40:]))

    # -- what the database says ----------------------------------------------------------------------------------
    def sql(self, query: str, *params: Any) -> list[tuple]:
        with sqlite3.connect(self.db, timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def runs(self, dag_id: str, run_type: str | None = None) -> list[tuple[str, str, str]]:
        """(run_id, logical_date, state) of a DAG's runs, by logical date."""
        query = "SELECT run_id, logical_date, state FROM dag_run WHERE dag_id = ?"
        params: tuple = (dag_id,)
        if run_type:
            query, params = query + " AND run_type = ?", (dag_id, run_type)
        return self.sql(query + " ORDER BY logical_date", *params)

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        rows = self.sql(
            "SELECT state FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?", dag_id, run_id, task_id
        )
        return rows[0][0] if rows else None

    def task_states(self, dag_id: str, run_id: str) -> list[tuple[str, str | None]]:
        """(task_id, state) of every task of a run."""
        query = "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ? ORDER BY task_id"
        return self.sql(query, dag_id, run_id)

    def task_windows(self, dag_id: str, task_id: str) -> dict[str, tuple[str, str]]:
        """run_id → (start, end) of one of its tasks (ISO text, so comparable as strings)."""
        rows = self.sql(
            "SELECT run_id, start_date, end_date FROM task_instance WHERE dag_id = ? AND task_id = ?", dag_id, task_id
        )
        return {run_id: (start, end) for run_id, start, end in rows}

    def xcoms(self, dag_id: str, task_id: str, key: str = "return_value") -> dict[str, Any]:
        """run_id → a task's XCom value (JSON, as Airflow stores it)."""
        rows = self.sql(
            "SELECT run_id, value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ?", dag_id, task_id, key
        )
        return {run_id: json.loads(value) for run_id, value in rows}

    # -- the public REST API (what the UI calls) ----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: dict | None = None) -> Any:
        assert self.public_api, "start with public_api=True to call the REST API"
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.base_url}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        try:
            # longer than the server's own wait for SQLite's write lock (30 s, above), so the answer arrives
            with urllib.request.urlopen(request, timeout=90) as response:  # noqa: S310 - loopback
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None
