"""`make stack` / `make stack-down`: docker-compose.yaml's topology as local processes, for machines without a
container engine.

    python scripts/stack.py up     [--dir .stack] [--images 2500] [--timeout 300] [--time-scale 600]
                                   [--check-interval SECONDS]
    python scripts/stack.py status [--dir .stack]
    python scripts/stack.py down   [--dir .stack]
    python scripts/stack.py stop|start|restart SERVICE [--dir .stack]    (SERVICE: one of the Airflow components)

`up` runs, all on loopback and on free ports: our own PostgreSQL (initdb into DIR/postgres; Debian's `postgresql`
package, installed when missing) and Redis (`redis-server` with DIR/redis/redis.conf), Airflow's api-server,
scheduler, dag-processor, triggerer and one Celery worker (CeleryExecutor, AIRFLOW_HOME=DIR/airflow), and the AWS
emulator seeded with the Open Images mirror, `aws_default` pointed at it. It returns once every part answers its
health check and prints the UI URL, the login and the emulator URL; on a stack that is already healthy it says so
and changes nothing. `down` stops exactly the processes `up` started (recorded pid and start time, process
groups, and a per-stack marker in their environment for anything that left its group), keeping data and logs.
`stop`/`start`/`restart SERVICE` do the same for one Airflow component of a running stack (api-server, scheduler,
dag-processor, triggerer, worker), with the command and environment `up` gives it; `start` returns once the stack is
healthy again. The worker is stopped as compose stops it (`DUMB_INIT_SETSID: "0"`): SIGTERM to Celery's main
process only, a warm shutdown that lets running tasks finish (SIGKILL after STOP_GRACE seconds).

`--time-scale` is the emulator's (how much faster simulated jobs run); `--check-interval` sets
GT_CHECK_INTERVAL_SECONDS for the Airflow components (every config's job-status check interval; the tests poll the
emulator's quick jobs every second). Both are kept in state.json, so a restarted component gets the same.

Airflow's settings come from deploy/airflow.env, the file docker-compose.yaml reads too; what depends on where
things run (URLs, ports, paths, secrets) is computed here. State, secrets, data and logs live under DIR (default
.stack/, or GT_STACK_DIR): state.json (pids, ports, URLs), secrets.json (mode 600), logs/<process>.log, and env
(source it to run the `airflow` CLI against the stack).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARED_ENV = REPO / "deploy" / "airflow.env"
MARKER = "GT_STACK_ID"
LOOPBACK = "127.0.0.1"
LISTEN = f"listen_addresses={LOOPBACK}"
PY_EMULATOR = (sys.executable, "-m", "emulator")
TIME_SCALE = 600.0  # as docker-compose.yaml's emulator
AIRFLOW = ("api-server", "scheduler", "dag-processor", "triggerer", "worker")
SERVICES = ("postgres", "redis", "emulator", *AIRFLOW)
ONE_SHOTS = ("db-migrate", "seed")
# Stop order: Airflow and the emulator first, then the broker, then the database they all write to.
STOP_WAVES = ((*AIRFLOW, *ONE_SHOTS, "emulator"), ("redis",), ("postgres",))
HEALTH_NAMES = ("metadatabase", "scheduler", "triggerer", "dag_processor")
STOP_GRACE = 30.0  # seconds between SIGTERM and SIGKILL (a warm worker shutdown waits for its running tasks)


def say(message: str) -> None:
    print(f"stack: {message}", flush=True)


class StackError(RuntimeError):
    pass


# --- configuration -------------------------------------------------------------------------------------------


def read_env_file(path: Path = SHARED_ENV) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads an env_file (comments and blank lines skipped, values literal)."""
    values = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise StackError(f"{path}:{number}: not KEY=VALUE: {raw!r}")
        values[key.strip()] = value
    return values


def free_port(preferred: int | None = None, taken: set[int] = frozenset()) -> int:
    """The preferred port when it is free on loopback (a restarted stack keeps its URLs), else any free one."""
    for candidate in ([preferred] if preferred else []) + [0]:
        if candidate in taken:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
            try:
                sock.bind((LOOPBACK, candidate))
            except OSError:
                continue
            port = sock.getsockname()[1]
            if port not in taken:
                return port
    return free_port(None, taken)


class Stack:
    """One stack directory: its state file, secrets, processes and health."""

    def __init__(
        self, root: Path, images: int = 2500, time_scale: float = TIME_SCALE, check_interval: float | None = None
    ) -> None:
        self.root = root.resolve()
        self.images = images
        self.time_scale = time_scale
        self.check_interval = check_interval
        self.state_file = self.root / "state.json"
        self.logs = self.root / "logs"
        self.home = self.root / "airflow"
        self.state: dict = {}
        self.children: dict[str, subprocess.Popen] = {}

    # -- files --------------------------------------------------------------------------------------------
    def load(self) -> dict:
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.state.setdefault("procs", {})
        return self.state

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2) + "\n")
        tmp.replace(self.state_file)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(f"another `stack.py` is working on {self.root}; wait for it") from None
            yield

    def secrets(self) -> dict[str, str]:
        path = self.root / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        fresh = {
            "postgres_password": lambda: secrets.token_urlsafe(18),
            "redis_password": lambda: secrets.token_urlsafe(18),
            "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "jwt_secret": lambda: secrets.token_urlsafe(32),
            "api_secret_key": lambda: secrets.token_urlsafe(32),
            # aws_default's credentials (the emulator takes any): random, so that a leak into a log or a page can be
            # told apart from every other word (the tests look for the secret key)
            "aws_access_key_id": lambda: "AKIA" + secrets.token_hex(8).upper(),
            "aws_secret_access_key": lambda: secrets.token_urlsafe(30),
        }
        missing = {key: make() for key, make in fresh.items() if key not in values}
        if missing:  # a new file, or one written before a key was added: keep what is there
            values.update(missing)
            tmp = path.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(values, out, indent=2)
            tmp.replace(path)
        return values

    @property
    def ports(self) -> dict[str, int]:
        return self.state["ports"]

    def url(self, name: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[name]}"

    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    # -- environment ------------------------------------------------------------------------------------
    def airflow_env(self) -> dict[str, str]:
        """The Airflow processes' environment: deploy/airflow.env plus what depends on this host."""
        s = self.secrets()
        pg = f"airflow:{quote(s['postgres_password'], safe='')}@{LOOPBACK}:{self.ports['postgres']}/airflow"
        # Nothing inherited configures the stack: only deploy/airflow.env and the values below.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "AWS_", "PYTHON", "GT_", "VIRTUAL_ENV")) and k != MARKER
        }
        env.update(read_env_file())
        env.update(
            {
                "PATH": os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")]),
                "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                # topology: a Celery worker on Redis, the metadata DB and result backend on Postgres
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg}",
                # the driver named: SQLAlchemy 2.1's default for postgresql:// is psycopg 3, which is not installed
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{pg}",
                "AIRFLOW__CELERY__BROKER_URL": (
                    f"redis://:{quote(s['redis_password'], safe='')}@{LOOPBACK}:{self.ports['redis']}/0"
                ),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": os.environ.get("GT_STACK_WORKER_CONCURRENCY", "4"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url('api')}/execution/",
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.ports["api"]),
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": LOOPBACK,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports["scheduler_health"]),
                "AIRFLOW__CORE__FERNET_KEY": s["fernet_key"],
                "AIRFLOW__API_AUTH__JWT_SECRET": s["jwt_secret"],
                "AIRFLOW__API__SECRET_KEY": s["api_secret_key"],
                # the local AWS stand-in, as compose.local.env does for the `local` profile
                "AIRFLOW_CONN_AWS_DEFAULT": (
                    f"aws://{quote(s['aws_access_key_id'], safe='')}:{quote(s['aws_secret_access_key'], safe='')}@/"
                    f"?region_name=us-east-1&endpoint_url={quote(self.url('emulator'), safe='')}"
                ),
                "AWS_EC2_METADATA_DISABLED": "true",
                "GT_INCLUDE_DIR": str(REPO / "include"),
                "GT_LOCAL_REPORTS_DIR": str(REPO / "reports"),
                "MPLBACKEND": "Agg",
                MARKER: self.state["id"],
            }
        )
        if self.state.get("check_interval"):
            env["GT_CHECK_INTERVAL_SECONDS"] = f"{self.state['check_interval']:g}"
        return env

    def write_env_script(self, env: dict[str, str]) -> None:
        keys = sorted(k for k in env if k.startswith(("AIRFLOW", "AWS_", "GT_")) or k in ("PYTHONPATH", "MPLBACKEND"))
        lines = ["# source this to run the `airflow` CLI against the stack (written by scripts/stack.py)"]
        lines += [f"export {k}={shlex.quote(env[k])}" for k in keys if k != MARKER]
        lines.append(f'export PATH={shlex.quote(str(BIN))}:"$PATH"')
        path = self.root / "env"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")

    # -- processes ----------------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str], env: dict[str, str], **popen) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("a") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} stack.py starts: {shlex.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen(
                argv,
                cwd=REPO,
                env={**env, MARKER: self.state["id"]},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a group, apart from the caller's
                **popen,
            )
        start = start_time(proc.pid)
        self.children[name] = proc
        self.state["procs"][name] = {"pid": proc.pid, "start": start, "argv": argv[:4]}
        self.save()
        return proc

    def alive(self, name: str) -> bool:
        record = self.state["procs"].get(name)
        return bool(record) and is_ours(record)

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"    {line}" for line in tail)


# --- /proc -----------------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()  # fields from the 3rd on (the name may contain anything)
    return None if fields[0] in ("Z", "X") else fields  # a zombie is gone: only its exit status is left


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_ours(record: dict) -> bool:
    return record.get("start") is not None and start_time(record["pid"]) == record["start"]


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def marked(stack_id: str) -> set[int]:
    """Live processes whose environment carries this stack's marker (children that left their group too)."""
    needle = f"{MARKER}={stack_id}".encode()
    found = set()
    for pid in pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and _stat(pid):
            found.add(pid)
    return found


def family(leaders: set[int]) -> dict[int, int]:
    """The leaders, their process groups and all their descendants (Postgres's backends each leave the group
    with setsid), as {pid: start time}: what stopping a component has to end."""
    table = {}
    for pid in pids():
        fields = _stat(pid)
        if fields:
            table[pid] = (int(fields[1]), int(fields[2]), int(fields[19]))  # ppid, pgid, start
    found = {pid for pid in leaders if pid in table} | {pid for pid, row in table.items() if row[1] in leaders}
    todo = list(found)
    while todo:
        parent = todo.pop()
        for pid, row in table.items():
            if row[0] == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return {pid: table[pid][2] for pid in found}


def still_alive(processes: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in processes.items() if start_time(pid) == start}


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS (shared pages divided among their sharers: the forked workers' real cost) in KiB."""
    values = {"Rss:": 0, "Pss:": 0}
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, *rest = line.split()
            if key in values:
                values[key] = int(rest[0])
    return values["Rss:"], values["Pss:"]


def wait_for(check: Callable[[], bool], seconds: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)  # polling a condition until its deadline


# --- packages --------------------------------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def redis_server() -> str | None:
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")


def ensure_packages() -> tuple[Path, str]:
    missing = [pkg for pkg, have in (("postgresql", postgres_bin()), ("redis-server", redis_server())) if not have]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        if not shutil.which("apt-get") or (sudo and not shutil.which("sudo")):
            raise StackError(f"{' and '.join(missing)} missing and no apt-get{'/sudo' if sudo else ''} to install them")
        say(f"installing Debian's {' '.join(missing)} (once)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            done = subprocess.run(sudo + argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise StackError(f"`{shlex.join(sudo + argv)}` failed: {done.stderr.strip()[-500:]}")
    pg, redis = postgres_bin(), redis_server()
    if not pg or not redis:
        raise StackError("postgresql / redis-server still missing after apt-get install")
    return pg, redis


def can_install_packages() -> bool:
    """Whether `up` can get Postgres and Redis here: present, or apt-get usable (as root or with sudo -n)."""
    if postgres_bin() and redis_server():
        return True
    if not shutil.which("apt-get"):
        return False
    if os.geteuid() == 0:
        return True
    return bool(shutil.which("sudo")) and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


# --- Postgres as someone other than root -----------------------------------------------------------------------


def postgres_runas(data: Path) -> tuple[list[str], dict]:
    """How to run the Postgres binaries: they refuse root. As root, a user namespace in which we are the `postgres`
    user (the files stay ours, wherever DIR is); where user namespaces are not allowed, as the `postgres` user,
    which then owns the data directory and must be able to reach it."""
    if os.geteuid() != 0:
        return [], {}
    try:
        account = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError("running as root and there is no `postgres` user to run Postgres as") from None
    userns = ["unshare", "--user", f"--map-user={account.pw_uid}", f"--map-group={account.pw_gid}"]
    if shutil.which("unshare") and subprocess.run([*userns, "true"], capture_output=True).returncode == 0:
        return userns, {}
    for parent in [data, *data.parents]:
        st = parent.stat() if parent.exists() else None
        if st and not (st.st_mode & 0o001 or (st.st_uid == account.pw_uid and st.st_mode & 0o100)):
            raise StackError(
                f"Postgres runs as the `postgres` user here (no user namespaces), which cannot enter {parent}: "
                f"use a --dir it can reach"
            )
    return [], {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


# --- up ----------------------------------------------------------------------------------------------------------


def up(stack: Stack, timeout: float) -> int:
    t0 = time.monotonic()
    with stack.locked():
        stack.load()
        if stack.state["procs"]:
            problems = health_problems(stack, quick=True)
            if problems and all(stack.alive(name) for name in SERVICES):

                def settled() -> bool:
                    problems[:] = health_problems(stack)
                    return not problems

                # every process runs: a check that failed once (a slow answer) gets a little time before a restart
                wait_for(settled, 30, interval=2)
            if not problems:
                say(f"already up and healthy in {stack.root}; nothing to do")
                print_info(stack)
                return 0
            say(f"the stack in {stack.root} is not healthy ({'; '.join(problems)}): restarting it")
            stop(stack)
        try:
            start(stack, timeout, t0)
        except (StackError, subprocess.SubprocessError, OSError) as exc:
            say(f"FAILED: {exc}")
            say("stopping what was started; logs are kept in " + str(stack.logs))
            stop(stack)
            return 1
        except KeyboardInterrupt:
            say("interrupted: stopping what was started")
            stop(stack)
            return 130
        elapsed = time.monotonic() - t0
        stack.state["healthy_after_s"] = round(elapsed, 1)
        stack.save()
        say(f"healthy in {elapsed:.0f} s")
        print_info(stack)
        return 0


def start(stack: Stack, timeout: float, t0: float) -> None:
    deadline = t0 + timeout
    pg_bin, redis_bin = ensure_packages()
    old = stack.state.get("ports", {})
    taken: set[int] = set()
    ports = {}
    for name in ("api", "emulator", "postgres", "redis", "scheduler_health"):
        ports[name] = free_port(old.get(name), taken)
        taken.add(ports[name])
    stack.state.update(
        {
            "id": uuid.uuid4().hex,
            "ports": ports,
            "procs": {},
            "images": stack.images,
            "time_scale": stack.time_scale,
            "check_interval": stack.check_interval,
        }
    )
    stack.state["urls"] = {"api": stack.url("api"), "emulator": stack.url("emulator")}
    stack.save()
    env = stack.airflow_env()
    stack.home.mkdir(parents=True, exist_ok=True)
    stack.write_env_script(env)
    secret = stack.secrets()

    # 1. Postgres, Redis and the emulator, side by side
    data = stack.root / "postgres"
    prefix, runas = postgres_runas(data)
    if not (data / "PG_VERSION").exists():
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        if runas:
            os.chown(data, runas["user"], runas["group"])
        stack.logs.mkdir(parents=True, exist_ok=True)
        pwfile = stack.root / "initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret["postgres_password"] + "\n")
        if runas:
            os.chown(pwfile, runas["user"], runas["group"])
        init = [*prefix, str(pg_bin / "initdb"), "-D", str(data), "-U", "airflow", "--auth=scram-sha-256"]
        init += [f"--pwfile={pwfile}", "--no-locale", "-E", "UTF8"]
        try:
            with (stack.logs / "postgres.log").open("a") as log:
                done = subprocess.run(init, stdin=subprocess.DEVNULL, stdout=log, stderr=log, **runas)
        finally:
            pwfile.unlink()
        if done.returncode != 0:
            raise StackError(f"initdb failed (exit {done.returncode}):\n{stack.log_tail('postgres')}")
    stack.spawn(
        "postgres",
        # TCP on loopback only, no Unix socket
        [*prefix, str(pg_bin / "postgres"), "-D", str(data), "-p", str(ports["postgres"]), "-k", "", "-c", LISTEN],
        env,
        **runas,
    )
    redis_dir = stack.root / "redis"
    redis_dir.mkdir(exist_ok=True)
    conf = redis_dir / "redis.conf"
    conf.write_text(
        "# written by scripts/stack.py on every `up`\n"
        f"bind {LOOPBACK}\nport {ports['redis']}\nprotected-mode yes\ndaemonize no\n"
        f'dir {redis_dir}\nlogfile ""\nsave ""\nappendonly no\nrequirepass {secret["redis_password"]}\n'
    )
    conf.chmod(0o600)
    stack.spawn("redis", [redis_bin, str(conf)], env)
    scale = stack.time_scale
    stack.spawn(
        "emulator",
        [*PY_EMULATOR, "serve", "--host", LOOPBACK, "--port", str(ports["emulator"]), "--time-scale", f"{scale:g}"],
        env,
    )

    # 2. The metadata DB (create, migrate) while the emulator is seeded
    def pg_ready() -> bool:
        expect_running(stack, "postgres")
        argv = [str(pg_bin / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(ports["postgres"])]
        return subprocess.run(argv, capture_output=True).returncode == 0

    say(f"starting postgres :{ports['postgres']}, redis :{ports['redis']}, emulator :{ports['emulator']}")
    wait_until(stack, "Postgres accepts connections", pg_ready, deadline)
    psql = [str(pg_bin / "psql"), "-X", "-q", "-h", LOOPBACK, "-p", str(ports["postgres"]), "-U", "airflow"]
    pg_env = {**os.environ, "PGPASSWORD": secret["postgres_password"], "PGCONNECT_TIMEOUT": "10"}
    exists = subprocess.run(
        [*psql, "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'airflow'"],
        env=pg_env,
        capture_output=True,
        text=True,
        check=True,
    )
    if exists.stdout.strip() != "1":
        subprocess.run([*psql, "-d", "postgres", "-c", "CREATE DATABASE airflow"], env=pg_env, check=True)
    migrate = stack.spawn("db-migrate", [str(BIN / "airflow"), "db", "migrate"], env)
    say(f"{time.monotonic() - t0:5.1f} s  Postgres ready; migrating the metadata DB, seeding the emulator")
    wait_until(stack, "the emulator answers", lambda: emulator_ok(stack), deadline, must_run=("emulator",))
    images = str(stack.images)  # 2500 by default, as docker-compose.yaml's emulator-seed
    seed = stack.spawn(
        "seed",
        [*PY_EMULATOR, "seed-openimages", "--endpoint-url", stack.url("emulator"), "--images", images, "--seed", "0"],
        env,
    )
    wait_until(stack, "`airflow db migrate` ends", lambda: migrate.poll() is not None, deadline)
    if migrate.returncode != 0:
        raise StackError(f"`airflow db migrate` failed (exit {migrate.returncode}):\n{stack.log_tail('db-migrate')}")
    stack.state["procs"].pop("db-migrate", None)

    # 3. Airflow's long-running components (task logs are read from the shared AIRFLOW_HOME/logs, so the worker
    #    and triggerer serve none: nothing listens beyond loopback)
    for name in AIRFLOW:
        stack.spawn(name, airflow_argv(stack, name), env)

    say(
        f"{time.monotonic() - t0:5.1f} s  DB migrated; api-server :{ports['api']}, scheduler, dag-processor, "
        "triggerer, worker started"
    )

    # 4. Healthy: every component's own check, and the mirror seeded
    def seeded() -> bool:
        if seed.poll() is None:
            return False
        if seed.returncode != 0:
            raise StackError(f"seeding the emulator failed (exit {seed.returncode}):\n{stack.log_tail('seed')}")
        return True

    wait_until(stack, "the emulator is seeded", seeded, deadline, must_run=SERVICES)
    stack.state["procs"].pop("seed", None)
    stack.save()
    say(f"{time.monotonic() - t0:5.1f} s  emulator seeded ({stack.images} images); waiting for health checks")
    last: list[str] = []

    def healthy() -> bool:
        expect_running(stack, *SERVICES)  # a component that died fails `up` now, not at the deadline
        last[:] = health_problems(stack)
        return not last

    if not wait_for(healthy, max(0.0, deadline - time.monotonic()), interval=1.0):
        tails = "\n".join(f"  {n}:\n{stack.log_tail(n)}" for n in AIRFLOW if not stack.alive(n))
        raise StackError(f"not healthy after {timeout:.0f} s: {'; '.join(last)}\n{tails}".rstrip())


def airflow_argv(stack: Stack, name: str) -> list[str]:
    """The command of one long-running Airflow component (`up` and `start SERVICE` both start it from here)."""
    airflow = str(BIN / "airflow")
    return {
        "api-server": [airflow, "api-server", "--host", LOOPBACK, "--port", str(stack.ports["api"])],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        "worker": [airflow, "celery", "worker", "--celery-hostname", worker_name(stack), "--skip-serve-logs"],
    }[name]


def worker_name(stack: Stack) -> str:
    return f"gt-stack-{stack.state['id'][:8]}@{LOOPBACK}"


def expect_running(stack: Stack, *names: str) -> None:
    for name in names:
        proc = stack.children.get(name)
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{name} exited (status {proc.returncode}) while starting:\n{stack.log_tail(name)}")


def wait_until(
    stack: Stack, what: str, check: Callable[[], bool], deadline: float, must_run: tuple[str, ...] = ()
) -> None:
    def step() -> bool:
        expect_running(stack, *must_run)
        return check()

    if not wait_for(step, max(0.0, deadline - time.monotonic())):
        raise StackError(f"timed out waiting until {what}")


# --- health ------------------------------------------------------------------------------------------------------


def http_json(url: str, timeout: float = 5) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our loopback URLs
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def emulator_ok(stack: Stack) -> bool:
    return http_json(f"{stack.url('emulator')}/_emulator/health")[0] == 200


def redis_ok(stack: Stack) -> bool:
    password = stack.secrets()["redis_password"]
    try:
        with socket.create_connection((LOOPBACK, stack.ports["redis"]), timeout=3) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 200:
                chunk = sock.recv(200)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+OK") and b"+PONG" in reply
    except OSError:
        return False


def worker_ok(stack: Stack) -> bool:
    """`celery inspect ping` to our worker by name, over the stack's broker."""
    from celery import Celery

    app = Celery(broker=stack.airflow_env()["AIRFLOW__CELERY__BROKER_URL"])
    try:
        replies = app.control.ping(destination=[worker_name(stack)], timeout=2.0)
    except Exception:  # noqa: BLE001 - any broker trouble is "not answering"
        return False
    finally:
        app.close()
    return any(worker_name(stack) in reply for reply in replies)


def health_problems(stack: Stack, quick: bool = False) -> list[str]:
    problems = [f"{name} is not running" for name in SERVICES if not stack.alive(name)]
    if problems and quick:
        return problems
    status, body = http_json(f"{stack.url('api')}/api/v2/monitor/health")
    if status != 200 or not body:
        problems.append(f"api-server health answers {status or 'nothing'}")
    else:
        problems += [
            f"{name} is {(body.get(name) or {}).get('status', 'unknown')}"
            for name in HEALTH_NAMES
            if (body.get(name) or {}).get("status") != "healthy"
        ]
    if http_json(f"http://{LOOPBACK}:{stack.ports['scheduler_health']}/health")[0] != 200:
        problems.append("the scheduler's /health does not answer 200")
    if not redis_ok(stack):
        problems.append("redis does not answer PING")
    if not emulator_ok(stack):
        problems.append("the emulator does not answer")
    if not problems and not worker_ok(stack):
        problems.append("the Celery worker does not answer `inspect ping`")
    return problems


def print_info(stack: Stack) -> None:
    root = stack.root
    rel = root.relative_to(Path.cwd()) if root.is_relative_to(Path.cwd()) else root
    passwords = rel / stack.passwords_file().relative_to(root)
    users = read_env_file().get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    login = ", ".join(u.split(":")[0] for u in users.split(","))
    stop = "make stack-down" if root == REPO / ".stack" else f"python scripts/stack.py down --dir {rel}"
    print(
        f"\n  Airflow UI  {stack.url('api')}\n"
        f"  login       {login}; password in {passwords} (SimpleAuthManager)\n"
        f"  emulator    {stack.url('emulator')}  (aws_default points here; s3://open-images-dataset seeded with "
        f"{stack.state.get('images')} bird images)\n"
        f"  Postgres    127.0.0.1:{stack.ports['postgres']}  Redis 127.0.0.1:{stack.ports['redis']}"
        f"  (passwords in {rel}/secrets.json)\n"
        f"  logs        {rel}/logs/   airflow CLI: source {rel}/env\n"
        f"  stop        {stop}\n",
        flush=True,
    )


def status(stack: Stack) -> int:
    stack.load()
    if not stack.state["procs"]:
        say(f"no stack running in {stack.root}")
        return 3
    total_rss = total_pss = 0
    print(f"  {'process':<14} {'pid':<7} {'state':<5} {'procs':>5} {'RSS MiB':>8} {'PSS MiB':>8}")
    for name, record in stack.state["procs"].items():
        members = set(family({record["pid"]})) if is_ours(record) else set()
        rss, pss = (sum(m) for m in zip(*(memory_kib(pid) for pid in members), strict=True)) if members else (0, 0)
        total_rss, total_pss = total_rss + rss, total_pss + pss
        state = "up" if members else "DOWN"
        print(f"  {name:<14} {record['pid']:<7} {state:<5} {len(members):>5} {rss / 1024:8.0f} {pss / 1024:8.0f}")
    print(f"  {'total':<33} {total_rss / 1024:8.0f} {total_pss / 1024:8.0f}")
    problems = health_problems(stack)
    say("healthy" if not problems else "NOT healthy: " + "; ".join(problems))
    if not problems:
        print_info(stack)
    return 0 if not problems else 1


# --- down ----------------------------------------------------------------------------------------------------------


def stop_wave(stack: Stack, names: tuple[str, ...] | list[str]) -> dict[int, int]:
    """Stop the named components together and wait for them (and all their descendants) to end, SIGKILL after
    STOP_GRACE seconds; returns what is still alive (nothing, normally)."""
    procs: dict = stack.state.get("procs", {})
    leaders = {procs[n]["pid"]: n for n in names if n in procs and is_ours(procs[n])}
    processes = family(set(leaders))
    for pid, name in leaders.items():
        with contextlib.suppress(ProcessLookupError):
            if name == "postgres":
                os.kill(pid, signal.SIGINT)  # fast shutdown: the postmaster stops its backends itself
            elif name == "worker":
                # as compose stops it (DUMB_INIT_SETSID: "0"): Celery's main process only, a warm shutdown that
                # lets the running tasks finish; a SIGTERM to the whole group would kill them mid-way
                os.kill(pid, signal.SIGTERM)
            else:
                os.killpg(pid, signal.SIGTERM)

    def wave_gone() -> bool:
        processes.update(family({pid for pid in leaders if pid in still_alive(processes)}))  # late forks
        return not still_alive(processes)

    if not wait_for(wave_gone, STOP_GRACE):
        for pid in still_alive(processes):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(wave_gone, 10)
    for child in stack.children.values():
        with contextlib.suppress(OSError):
            child.poll()  # reap what this process started itself
    return still_alive(processes)


def stop(stack: Stack) -> list[int]:
    """Stop every process this stack started; returns the pids of ours still alive afterwards (none, normally)."""
    procs: dict = stack.state.get("procs", {})
    left: dict[int, int] = {}
    for wave in STOP_WAVES:
        left.update(stop_wave(stack, wave))
    stragglers = marked(stack.state["id"]) if stack.state.get("id") else set()
    for pid in stragglers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if stragglers and not wait_for(lambda: not marked(stack.state["id"]), 10):
        for pid in marked(stack.state["id"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not marked(stack.state["id"]), 10)
    left = sorted(
        set(still_alive(left))
        | {r["pid"] for r in procs.values() if is_ours(r)}
        | (marked(stack.state["id"]) if stack.state.get("id") else set())
    )
    stack.state["stopped"] = {n: r["pid"] for n, r in procs.items()}
    stack.state["procs"] = {}
    stack.save()
    return left


def control(stack: Stack, action: str, name: str, timeout: float) -> int:
    """`stop`, `start` or `restart` one Airflow component of a running stack."""
    if name not in AIRFLOW:
        raise StackError(f"{action} works on one of {', '.join(AIRFLOW)}, not {name!r}")
    t0 = time.monotonic()
    with stack.locked():
        stack.load()
        if not stack.state["procs"]:
            raise StackError(f"no stack running in {stack.root}: `up` first")
        if action in ("stop", "restart"):
            if stack.alive(name):
                left = stop_wave(stack, [name])
                if left:
                    raise StackError(f"could not stop {name}: pids {sorted(left)} still alive")
                say(f"stopped {name} in {time.monotonic() - t0:.1f} s")
            else:
                say(f"{name} was not running")
            stack.state["procs"].pop(name, None)
            stack.save()
        if action in ("start", "restart"):
            if stack.alive(name):
                say(f"{name} is already running")
                return 0
            stack.spawn(name, airflow_argv(stack, name), stack.airflow_env())
            last: list[str] = []

            def healthy() -> bool:
                expect_running(stack, name)
                last[:] = health_problems(stack)
                return not last

            if not wait_for(healthy, timeout, interval=1.0):
                problems = "; ".join(last)
                raise StackError(f"{name} started, but the stack is not healthy after {timeout:.0f} s: {problems}")
            say(f"started {name}; the stack is healthy after {time.monotonic() - t0:.1f} s")
        return 0


def down(stack: Stack) -> int:
    with stack.locked():
        stack.load()
        if not stack.state["procs"]:
            say(f"no stack running in {stack.root}")
            return 0
        names = ", ".join(stack.state["procs"])
        left = stop(stack)
        if left:
            say(f"could not stop pids {left}")
            return 1
        say(f"stopped {names}; data and logs kept in {stack.root}")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "stop", "start", "restart"))
    parser.add_argument("service", nargs="?", help=f"for stop/start/restart: one of {', '.join(AIRFLOW)}")
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("GT_STACK_DIR") or REPO / ".stack"))
    parser.add_argument("--images", type=int, default=int(os.environ.get("GT_STACK_IMAGES", "2500")))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("GT_STACK_TIMEOUT", "300")))
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE, help="the emulator's (default: %(default)g)")
    parser.add_argument(
        "--check-interval", type=float, help="GT_CHECK_INTERVAL_SECONDS for Airflow (default: each config's own)"
    )
    args = parser.parse_args(argv)
    if (args.command in ("stop", "start", "restart")) != bool(args.service):
        parser.error("stop, start and restart take one SERVICE; up, down and status none")
    if args.time_scale <= 0 or (args.check_interval is not None and args.check_interval <= 0):
        parser.error("--time-scale and --check-interval must be positive")
    stack = Stack(args.dir, images=args.images, time_scale=args.time_scale, check_interval=args.check_interval)
    try:
        if args.command == "up":
            return up(stack, args.timeout)
        if args.command == "down":
            return down(stack)
        if args.service:
            return control(stack, args.command, args.service, args.timeout)
        return status(stack)
    except StackError as exc:
        say(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
