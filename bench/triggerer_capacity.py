"""N concurrent job waits (`groundtruth.triggers`) in one triggerer, against the emulator in its own process.

The triggerer is Airflow's own: `TriggerRunnerSupervisor.start` forks the real `TriggerRunner` (one asyncio loop,
its comms with the supervisor, greenback portals, per-trigger JSON logs sent to the supervisor), and the supervisor
writes every trigger's log to its own file as the real one does. Only the database is left out: a subclass feeds
the runner N `RunTrigger` workloads (at most `[triggerer] max_trigger_to_select_per_loop` = 50 a loop, as
`Trigger.assign_unassigned` hands them out) and records the events and failures instead of writing them.

Jobs are real emulator jobs created through the API (one-text text-classification labeling jobs; BlazingText
training jobs; BlazingText batch transforms), each held by its runner on a gated clock: a labeling job stops in its
first human batch (InProgress), a training or transform job in Starting (InProgress), until the bench releases it;
then the real runner finishes it (labels, trains, transforms) and the emulator records when the job ended. An idle
held job costs one blocked thread in the emulator.

Phases: create the jobs; start the triggerer and hand it the triggers; once each has described its job, hold for
`--hold` seconds (CPU, RSS); release the jobs in random order over `--complete-over` seconds and take each trigger's
event (latency = event at the supervisor - job ended in the emulator). A probe trigger samples the loop's lag every
0.1 s. Prints CPU seconds per wait-hour (target <= 1) and memory per wait (target <= 200 KB), with their ratios.

Usage: python bench/triggerer_capacity.py [--waits 1000] [--poll 60] [--hold 180] [--complete-over 60]
           [--kinds labeling[,training,transform]]
       python bench/triggerer_capacity.py --in-process [--waits 200] [--client-per-wait]
           (what a wait allocates, by tracemalloc, in one loop in this process; see `run_in_process`)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

REGION = "us-east-1"
BUCKET = "triggerer-capacity"
ROLE = "arn:aws:iam::123456789012:role/GroundTruthExecution"
WORKTEAM = f"arn:aws:sagemaker:{REGION}:394669845002:workteam/public-crowd/default"
LAMBDAS = f"arn:aws:lambda:{REGION}:432418664414:function"
BLAZINGTEXT_IMAGE = f"811284229777.dkr.ecr.{REGION}.amazonaws.com/blazingtext:1"
TEXT, TEXT_CLASS, CLASSES = "Stocks rally as the central bank holds rates", "b", ["b", "e", "t", "m"]
KINDS = ("labeling", "training", "transform")
TRIGGERS = {
    "labeling": "groundtruth.triggers.LabelingJobTrigger",
    "training": "groundtruth.triggers.TrainingJobTrigger",
    "transform": "groundtruth.triggers.TransformJobTrigger",
}
TARGET_CPU_PER_WAIT_HOUR = 1.0
TARGET_BYTES_PER_WAIT = 200 * 1024
PROBE_ID = 0


# ---------------------------------------------------------------------------------------------------------------------
# The emulator process: the real emulator, its job runners on a gated clock, two bench admin routes.
# ---------------------------------------------------------------------------------------------------------------------
def serve_emulator(time_scale: float) -> None:
    from emulator.app import build_app
    from emulator.clock import SimClock
    from emulator.labeling.models import LabelingJob
    from emulator.server import EmulatorServer
    from emulator.training.models import TrainingJob, TransformJob

    lock = threading.Lock()
    gates: dict[str, threading.Event] = {}
    ended: dict[str, tuple[float, str]] = {}
    describes = [0]
    described: set[str] = set()

    def gate(name: str) -> threading.Event:
        with lock:
            return gates.setdefault(name, threading.Event())

    class GatedClock(SimClock):
        """The first `free` waits pass on the simulated clock; the next one holds until the bench releases the job;
        the rest pass again."""

        def __init__(self, scale: float, free: int, release: threading.Event) -> None:
            super().__init__(scale)
            self.free, self.release, self.held = free, release, False

        def wait(self, sim_seconds: float, interrupt: threading.Event) -> bool:
            if self.free > 0 or self.held:
                self.free -= 1
                return super().wait(sim_seconds, interrupt)
            self.held = True
            while not self.release.wait(60):  # a blocked thread; it wakes once a minute
                pass
            return interrupt.is_set()

    def recording(method):
        def wrapper(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            if self.status in ("Completed", "Failed", "Stopped"):
                with lock:
                    ended.setdefault(self.name, (time.time(), self.status))
            return result

        return wrapper

    def counting(method):
        def wrapper(self, *args, **kwargs):
            describes[0] += 1  # under the GIL; an odd lost count does not matter here
            described.add(self.name)
            return method(self, *args, **kwargs)

        return wrapper

    for cls, names in (
        (LabelingJob, ("complete", "fail", "stopped")),
        (TrainingJob, ("_end",)),
        (TransformJob, ("_end",)),
    ):
        for name in names:
            setattr(cls, name, recording(getattr(cls, name)))
        cls.describe = counting(cls.describe)

    app = build_app(time_scale=time_scale)
    app.text_truth.register([(TEXT, TEXT_CLASS)])
    for backend, free in ((app.labeling, 1), (app.training, 0), (app.transforms, 0)):
        run = backend.run_job

        def gated(job, clock, run=run, free=free):
            run(job, GatedClock(clock.scale, free, gate(job.name)))

        backend.run_job = gated

    def release(method: str, raw: bytes):
        names = json.loads(raw or b"{}").get("names", [])
        for name in names:
            gate(name).set()
        return 200, {"released": len(names)}

    def state(method: str, raw: bytes):
        with lock:
            return 200, {
                "ended": dict(ended),
                "describes": describes[0],
                "described": len(described),
                "held": sum(not g.is_set() for g in gates.values()),
            }

    app.wire.register_admin("/_emulator/bench-release", release)
    app.wire.register_admin("/_emulator/bench-state", state)
    server = EmulatorServer("127.0.0.1", 0, app)
    print(f"emulator listening on {server.url}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        server.serve_forever()


def start_emulator(time_scale: float) -> tuple[subprocess.Popen, str]:
    # The access log goes nowhere: thousands of lines to a terminal would be measured as the emulator's time.
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-emulator", "--time-scale", str(time_scale)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}"},
    )
    line = proc.stdout.readline()
    if "listening on " not in line:
        raise RuntimeError(f"the emulator did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def admin(url: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_emulator/{path}", data=data, method="POST" if data else "GET")  # noqa: S310
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return json.loads(response.read())


# ---------------------------------------------------------------------------------------------------------------------
# Process figures from /proc.
# ---------------------------------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, all threads


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------------------------------
# The jobs, created through the API.
# ---------------------------------------------------------------------------------------------------------------------
def labeling_request(name: str) -> dict:
    prefix = f"s3://{BUCKET}/labeling"
    return {
        "LabelingJobName": name,
        "LabelAttributeName": "category",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": f"{prefix}/input.manifest"}}},
        "OutputConfig": {"S3OutputPath": f"{prefix}/output/"},
        "RoleArn": ROLE,
        "LabelCategoryConfigS3Uri": f"{prefix}/label_categories.json",
        "HumanTaskConfig": {
            "WorkteamArn": WORKTEAM,
            "UiConfig": {"UiTemplateS3Uri": f"{prefix}/template.liquid"},
            "PreHumanTaskLambdaArn": f"{LAMBDAS}:PRE-TextMultiClass",
            "TaskTitle": "Classify",
            "TaskDescription": "Choose the class that fits best",
            "NumberOfHumanWorkersPerDataObject": 3,
            "TaskTimeLimitInSeconds": 300,
            "MaxConcurrentTaskCount": 200,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": f"{LAMBDAS}:ACS-TextMultiClass"},
            "PublicWorkforceTaskPrice": {"AmountInUsd": {"Dollars": 0, "Cents": 1, "TenthFractionsOfACent": 2}},
        },
    }


def training_request(name: str) -> dict:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": BLAZINGTEXT_IMAGE, "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "HyperParameters": {"mode": "supervised", "epochs": "5", "min_count": "1", "early_stopping": "False"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{BUCKET}/training/train/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/training/output"},
        "ResourceConfig": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def transform_request(name: str, model: str) -> dict:
    return {
        "TransformJobName": name,
        "ModelName": model,
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/transform/input/"}},
            "ContentType": "application/jsonlines",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"s3://{BUCKET}/transform/output/{name}",
            "Accept": "application/jsonlines",
            "AssembleWith": "Line",
        },
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }


def seed_inputs(s3, sagemaker, url: str, kinds: list[str], run: str) -> str | None:
    """The inputs every job of a kind shares; for transforms, one trained model. Returns the model name."""
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="labeling/input.manifest", Body=json.dumps({"source": TEXT}) + "\n")
    labels = {"document-version": "2018-11-28", "labels": [{"label": c} for c in CLASSES]}
    s3.put_object(Bucket=BUCKET, Key="labeling/label_categories.json", Body=json.dumps(labels))
    s3.put_object(Bucket=BUCKET, Key="labeling/template.liquid", Body="<crowd-classifier></crowd-classifier>")
    words = ["stocks rally", "film premiere", "phone launch", "flu season"]
    lines = [f"__label__{c} {w} {i}" for i in range(10) for c, w in zip(CLASSES, words, strict=True)]
    s3.put_object(Bucket=BUCKET, Key="training/train/train.txt", Body="\n".join(lines) + "\n")
    if "transform" not in kinds:
        return None
    s3.put_object(Bucket=BUCKET, Key="transform/input/records.jsonl", Body=json.dumps({"source": TEXT}) + "\n")
    name = f"tc-{run}-model"
    sagemaker.create_training_job(**training_request(name))
    admin(url, "bench-release", {"names": [name]})
    for _ in range(600):
        desc = sagemaker.describe_training_job(TrainingJobName=name)
        if desc["TrainingJobStatus"] != "InProgress":
            break
        time.sleep(0.1)
    if desc["TrainingJobStatus"] != "Completed":
        raise RuntimeError(f"the transforms' model did not train: {desc.get('FailureReason')}")
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": BLAZINGTEXT_IMAGE, "ModelDataUrl": desc["ModelArtifacts"]["S3ModelArtifacts"]},
    )
    return name


def create_jobs(sagemaker, jobs: list[tuple[str, str]], model: str | None) -> None:
    create = {
        "labeling": lambda name: sagemaker.create_labeling_job(**labeling_request(name)),
        "training": lambda name: sagemaker.create_training_job(**training_request(name)),
        "transform": lambda name: sagemaker.create_transform_job(**transform_request(name, model)),
    }
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda job: create[job[0]](job[1]), jobs))


# ---------------------------------------------------------------------------------------------------------------------
# The triggerer side.
# ---------------------------------------------------------------------------------------------------------------------
def probe_trigger_class():
    import asyncio

    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class LoopLagProbe(BaseTrigger):
        """Sleeps `interval` s over and over and reports, every `every` s, how late the loop woke it, and the
        garbage collector's pauses in the runner process meanwhile (gen 2: the full collections)."""

        def __init__(self, interval: float = 0.1, every: float = 10.0) -> None:
            super().__init__()
            self.interval, self.every = interval, every

        def serialize(self):
            return f"{__name__}.LoopLagProbe", {"interval": self.interval, "every": self.every}

        async def run(self):
            import gc

            pauses: list[tuple[int, float]] = []
            started = [0.0]

            def on_gc(phase: str, info: dict) -> None:
                if phase == "start":
                    started[0] = time.perf_counter()
                else:
                    pauses.append((info["generation"], time.perf_counter() - started[0]))

            gc.callbacks.append(on_gc)
            while True:
                lags, end = [], time.monotonic() + self.every
                while time.monotonic() < end:
                    start = time.monotonic()
                    await asyncio.sleep(self.interval)
                    lags.append(time.monotonic() - start - self.interval)
                lags.sort()
                full = [d for g, d in pauses if g == 2]
                event = {"probe": True, "at": time.time(), "max": lags[-1], "p99": lags[int(0.99 * (len(lags) - 1))]}
                event.update(gc_s=sum(d for _, d in pauses), gc2=len(full), gc2_max=max(full, default=0.0))
                pauses.clear()
                yield TriggerEvent(event)

    LoopLagProbe.__qualname__ = "LoopLagProbe"
    globals()["LoopLagProbe"] = LoopLagProbe  # importable by its classpath in the forked runner
    return LoopLagProbe


def workloads_for(jobs: list[tuple[str, str]], poll: float) -> list:
    from airflow.executors import workloads
    from airflow.executors.workloads.task import TaskInstanceDTO
    from airflow.models.trigger import Trigger

    from groundtruth import triggers

    probe_path, probe_kwargs = probe_trigger_class()().serialize()
    result = [
        workloads.RunTrigger(id=PROBE_ID, classpath=probe_path, encrypted_kwargs=Trigger.encrypt_kwargs(probe_kwargs))
    ]
    for trigger_id, (kind, name) in enumerate(jobs, start=1):
        trigger_class = getattr(triggers, TRIGGERS[kind].rsplit(".", 1)[1])
        classpath, kwargs = trigger_class(job_name=name, poke_interval=poll).serialize()
        ti = TaskInstanceDTO(
            id=uuid.uuid4(),
            task_id=f"wait_{kind}",
            dag_id=f"bench_{trigger_id}",
            run_id="bench",
            try_number=1,
            dag_version_id=uuid.uuid4(),
            pool_slots=1,
            priority_weight=1,
        )
        encrypted = Trigger.encrypt_kwargs(kwargs)
        result.append(workloads.RunTrigger(id=trigger_id, classpath=classpath, encrypted_kwargs=encrypted, ti=ti))
    return result


def supervisor_class():
    import attrs
    from airflow.jobs.triggerer_job_runner import TriggerLoggingFactory, TriggerRunnerSupervisor

    @attrs.define(kw_only=True)
    class BenchSupervisor(TriggerRunnerSupervisor):
        """The triggerer's supervisor without a database: triggers come from `pending`, events go to `fired`."""

        pending: deque = attrs.field(factory=deque)
        per_loop: int = 50
        allowed: int = 0  # how many of `pending` may be handed over so far
        handed: int = 0
        fired: dict = attrs.field(factory=dict)  # trigger id -> [(time received, payload)]
        failures: dict = attrs.field(factory=dict)

        def heartbeat(self) -> None:
            pass

        def metric_tags(self) -> dict[str, str]:
            return {"hostname": "bench"}

        def clean_unused(self) -> None:
            pass

        def load_triggers(self) -> None:
            for _ in range(max(0, min(self.per_loop, len(self.pending), self.allowed - self.handed))):
                workload = self.pending.popleft()
                self.handed += 1
                if workload.ti is not None:  # what _create_workload does: the trigger's own log file
                    self.logger_cache[workload.id] = TriggerLoggingFactory(
                        log_path=f"bench/{workload.ti.dag_id}.trigger.log", ti=workload.ti
                    )
                self.creating_triggers.append(workload)

        def on_trigger_event(self, trigger_id, event) -> None:
            self.fired.setdefault(trigger_id, []).append((time.time(), event.payload))

        def on_trigger_failure(self, trigger_id, exc) -> None:
            self.failures[trigger_id] = exc

    return BenchSupervisor


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_in_process(args: argparse.Namespace) -> None:
    """`--in-process`: what a wait allocates, by tracemalloc, with N `LabelingJobTrigger.run()` in one asyncio loop in
    this process (no triggerer) against the emulator. A few waits first (imports, botocore's loaded models, the
    shared client), then N more, measured once each has described its job; `--client-per-wait` gives every wait
    its own aiobotocore client, as `run()` did before `groundtruth.async_clients`."""
    import asyncio
    import gc
    import tracemalloc

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    emulator, url = start_emulator(args.time_scale)
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = (
        f"aws://emulator-key:emulator-secret-0@/?region_name={REGION}&endpoint_url={quote(url, safe='')}"
    )
    try:
        import boto3

        keys = {"aws_access_key_id": "emulator-key", "aws_secret_access_key": "emulator-secret-0"}  # any key works
        session = boto3.session.Session(region_name=REGION, **keys)
        sagemaker = session.client("sagemaker", endpoint_url=url)
        run = uuid.uuid4().hex[:6]
        seed_inputs(session.client("s3", endpoint_url=url), sagemaker, url, ["labeling"], run)
        warm = 5
        names = [f"tc-{run}-labeling-{i:05d}" for i in range(warm + args.waits)]
        create_jobs(sagemaker, [("labeling", name) for name in names], None)

        from groundtruth import async_clients, triggers

        if args.client_per_wait:

            @contextlib.asynccontextmanager
            async def client_per_wait(hook, botocore_config=None):
                async with await hook.get_async_conn() as client:
                    yield client

            triggers.shared_client = client_per_wait

        async def until_described(count: int) -> None:
            while admin(url, "bench-state")["described"] < count:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            gc.collect()

        async def wait(name: str) -> None:
            async for _ in triggers.LabelingJobTrigger(job_name=name, poke_interval=3600).run():
                pass

        async def main() -> None:
            tasks = [asyncio.create_task(wait(name)) for name in names[:warm]]
            await until_described(warm)
            tracemalloc.start(1)
            before, cpu0 = tracemalloc.take_snapshot(), time.process_time()
            tasks += [asyncio.create_task(wait(name)) for name in names[warm:]]
            await until_described(len(names))
            after, cpu = tracemalloc.take_snapshot(), time.process_time() - cpu0
            tracemalloc.stop()
            n = args.waits
            by_file = after.compare_to(before, "filename")
            total = sum(stat.size_diff for stat in by_file)
            how = "a client per wait" if args.client_per_wait else "shared clients"
            print(
                f"in process, {how}: {n} waits allocate {total / n / 1024:.1f} KB a wait (tracemalloc, Python "
                f"objects; RSS adds the allocator's overhead), {cpu / n * 1000:.1f} CPU-ms a wait to start and "
                f"describe once; open shared clients: {len(async_clients.SHARED_CLIENTS)}"
            )
            for stat in by_file[:12]:
                where = stat.traceback[0].filename.replace(str(REPO) + "/", "").split("site-packages/")[-1]
                print(f"  {stat.size_diff / n / 1024:7.2f} KB {stat.count_diff / n:7.1f} blocks a wait  {where}")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            print(f"after cancelling every wait: {len(async_clients.SHARED_CLIENTS)} shared clients open")

        asyncio.run(main())
    finally:
        emulator.terminate()
        emulator.wait(30)


def run_bench(args: argparse.Namespace) -> None:
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or any(k not in KINDS for k in kinds):
        raise SystemExit(f"--kinds takes {', '.join(KINDS)}")
    home = Path(tempfile.mkdtemp(prefix="gt-bench-triggerer-"))
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    from cryptography.fernet import Fernet

    os.environ["AIRFLOW__CORE__FERNET_KEY"] = Fernet.generate_key().decode()

    started = time.time()
    emulator, url = start_emulator(args.time_scale)
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = (
        f"aws://emulator-key:emulator-secret-0@/?region_name={REGION}&endpoint_url={quote(url, safe='')}"
    )
    supervisor = None
    try:
        import boto3

        keys = {"aws_access_key_id": "emulator-key", "aws_secret_access_key": "emulator-secret-0"}  # any key works
        session = boto3.session.Session(region_name=REGION, **keys)
        s3 = session.client("s3", endpoint_url=url)
        sagemaker = session.client("sagemaker", endpoint_url=url)
        run = uuid.uuid4().hex[:6]
        model = seed_inputs(s3, sagemaker, url, kinds, run)
        jobs = [(kinds[i % len(kinds)], f"tc-{run}-{kinds[i % len(kinds)]}-{i:05d}") for i in range(args.waits)]
        t = time.perf_counter()
        create_jobs(sagemaker, jobs, model)
        created_s = time.perf_counter() - t
        state = admin(url, "bench-state")
        print(
            f"emulator {url} (pid {emulator.pid}): {args.waits} jobs ({', '.join(kinds)}) created in "
            f"{created_s:.1f} s, {state['held']} held InProgress; emulator RSS {rss_bytes(emulator.pid) / 2**20:.0f} MB"
        )

        # The trigger classes are imported here, before the fork (the real runner imports them on first use): their
        # import is shared with the parent, not counted in the runner's RSS, which only the first wait would pay.
        work = workloads_for(jobs, args.poll)
        supervisor = supervisor_class().start(capacity=args.waits + 1, pending=deque(work), per_loop=args.per_loop)
        child = supervisor.pid

        def loop_for(seconds: float, until=None) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end and supervisor.is_alive():
                supervisor.run_once()
                if until is not None and until():
                    return

        def described_all(count: int) -> bool:
            return admin(url, "bench-state")["described"] >= count + (1 if model else 0)  # + the model's training

        loop_for(3)  # the runner started and synced; no trigger yet
        rss_empty = rss_bytes(child)
        # A first few waits, then the rest: the second step's RSS per wait leaves out what the first wait pays once
        # (imports, botocore's loaded models and endpoint rules, the sync_to_async executor).
        first = max(1, min(50, args.waits // 10))
        supervisor.allowed = 1 + first  # the probe and `first` waits
        t_load = time.monotonic()
        loop_for(max(120.0, 3 * args.poll), until=lambda: described_all(first))
        loop_for(2)
        rss_first = rss_bytes(child)
        supervisor.allowed = len(work)
        loop_for(3600, until=lambda: not supervisor.pending and not supervisor.creating_triggers)
        handed_s = time.monotonic() - t_load
        loop_for(args.startup_timeout, until=lambda: described_all(args.waits))
        warm_s = time.monotonic() - t_load
        if not described_all(args.waits):
            print(
                f"WARNING: not every wait described its job within {args.startup_timeout:g} s: the hold starts anyway"
            )
        loop_for(2)

        # -- the held window: every trigger waits, none finishes --------------------------------------------------
        before = admin(url, "bench-state")
        cpu0, sup0, emu0, rss0, t0 = (
            cpu_seconds(child),
            own_cpu(),
            cpu_seconds(emulator.pid),
            rss_bytes(child),
            time.time(),
        )
        samples = []
        while time.time() - t0 < args.hold and supervisor.is_alive():
            loop_for(min(10.0, args.hold - (time.time() - t0)))
            samples.append((time.time() - t0, cpu_seconds(child) - cpu0, rss_bytes(child)))
        after = admin(url, "bench-state")
        cpu1, sup1, emu1, rss1, t1 = (
            cpu_seconds(child),
            own_cpu(),
            cpu_seconds(emulator.pid),
            rss_bytes(child),
            time.time(),
        )
        held_h = (t1 - t0) / 3600
        polls = after["describes"] - before["describes"]
        probe_every = 10.0
        probes = [p for _, p in supervisor.fired.get(PROBE_ID, []) if t0 <= p["at"] - probe_every and p["at"] <= t1]

        # -- completions, spread over --complete-over seconds, in random order ------------------------------------
        order = [name for _, name in jobs]
        random.Random(0).shuffle(order)
        t_release = time.time()

        def releaser() -> None:
            done = 0
            while done < len(order):
                due = min(len(order), int(len(order) * (time.time() - t_release) / max(args.complete_over, 1e-9)) + 1)
                if due > done:
                    admin(url, "bench-release", {"names": order[done:due]})
                    done = due
                time.sleep(0.2)

        thread = threading.Thread(target=releaser, daemon=True)
        thread.start()
        deadline = time.monotonic() + args.complete_over + 3 * args.poll + 60
        id_of = {name: i for i, (_, name) in enumerate(jobs, start=1)}
        loop_for(
            deadline - time.monotonic(),
            until=lambda: all(id_of[n] in supervisor.fired or id_of[n] in supervisor.failures for n in order),
        )
        thread.join(5)
        cpu2, emu2 = cpu_seconds(child), cpu_seconds(emulator.pid)
        final = admin(url, "bench-state")
        latencies, statuses = [], {}
        for _, name in jobs:
            events = supervisor.fired.get(id_of[name])
            if not events or name not in final["ended"]:
                continue
            received, payload = events[0]
            statuses[payload.get("status")] = statuses.get(payload.get("status"), 0) + 1
            latencies.append(received - final["ended"][name][0])
        late_probes = [p for _, p in supervisor.fired.get(PROBE_ID, []) if p["at"] > t1]
        start_probes = [p for _, p in supervisor.fired.get(PROBE_ID, []) if p["at"] < t0]

        logs = home / "logs"
        log_bytes = sum(p.stat().st_size for p in logs.rglob("*") if p.is_file())
        log_text = [p.read_text(errors="replace") for p in (logs / "bench").glob("*.log")]
        transient = sum(text.count("failed transiently") for text in log_text)
        progress = [
            len(line) + 1 for text in log_text for line in text.splitlines() if '"logger":"groundtruth.' in line
        ]
        progress_bytes = statistics.mean(progress) if progress else 0.0

        # -- report -----------------------------------------------------------------------------------------------
        n = args.waits
        cpu_child = cpu1 - cpu0
        per_wait_hour = cpu_child / (n * held_h)
        sup_per_wait_hour = (sup1 - sup0) / (n * held_h)
        bytes_per_wait = (rss1 - rss_empty) / n
        marginal = (rss0 - rss_first) / max(1, n - first)
        print(
            f"triggerer: {n} waits ({', '.join(kinds)}), poll {args.poll:g} s, handed over in {handed_s:.1f} s "
            f"({args.per_loop} a loop), all described once after {warm_s:.1f} s"
        )
        print(
            f"held {t1 - t0:.0f} s: {polls} describes ({polls / (t1 - t0):.1f}/s, {polls / n:.2f} a wait; "
            f"{transient} transient errors logged)"
        )
        print(
            f"  TriggerRunner (pid {child}, the asyncio loop): {cpu_child:.1f} CPU-s = {per_wait_hour:.3f} CPU-s per "
            f"wait-hour (target {TARGET_CPU_PER_WAIT_HOUR:g}: x{per_wait_hour / TARGET_CPU_PER_WAIT_HOUR:.2f}); "
            f"{cpu_child / max(polls, 1) * 1000:.2f} ms a describe; at 60 s polls "
            f"{cpu_child / max(polls, 1) * 60:.3f} CPU-s per wait-hour"
        )
        print(
            f"  supervisor (pid {os.getpid()}, logs to {n} files): {sup1 - sup0:.1f} CPU-s = {sup_per_wait_hour:.3f} "
            f"CPU-s per wait-hour; trigger logs {log_bytes / 2**20:.1f} MB in all, one line of {progress_bytes:.0f} B "
            f"a describe ({progress_bytes * 86400 / args.poll / 2**20:.2f} MB a wait-day)"
        )
        print(
            f"  emulator (pid {emulator.pid}, not counted above): {emu1 - emu0:.1f} CPU-s, "
            f"{(emu1 - emu0) / max(polls, 1) * 1000:.2f} ms a describe"
        )
        print(
            f"  memory: runner RSS {rss_empty / 2**20:.0f} MB without triggers, {rss0 / 2**20:.0f} MB when held, "
            f"{rss1 / 2**20:.0f} MB after the hold: {bytes_per_wait / 1024:.0f} KB a wait "
            f"(target {TARGET_BYTES_PER_WAIT // 1024} KB: x{bytes_per_wait / TARGET_BYTES_PER_WAIT:.2f}); "
            f"{rss_first / 2**20:.0f} MB with the first {first}, so {marginal / 1024:.0f} KB for each wait after them "
            f"(x{marginal / TARGET_BYTES_PER_WAIT:.2f})"
        )
        if samples:
            print(
                "  over the hold (s: runner CPU-s, RSS MB): "
                + ", ".join(f"{s:.0f}: {c:.1f}, {r / 2**20:.0f}" for s, c, r in samples[:: max(1, len(samples) // 8)])
            )
        stages = (("while starting", start_probes), ("while held", probes), ("while the jobs ended", late_probes))
        for what, chosen in stages:
            if chosen:
                print(
                    f"  loop lag {what} (probe, 0.1 s sleeps): p99 {max(p['p99'] for p in chosen) * 1000:.0f} ms, "
                    f"max {max(p['max'] for p in chosen) * 1000:.0f} ms; garbage collection "
                    f"{sum(p['gc_s'] for p in chosen):.1f} s in all, {sum(p['gc2'] for p in chosen)} full collections "
                    f"of up to {max(p['gc2_max'] for p in chosen) * 1000:.0f} ms"
                )
        missing = n - len(latencies)
        print(
            f"completions over {args.complete_over:g} s: {len(latencies)} events {statuses}, {missing} missing, "
            f"{len(supervisor.failures)} trigger failures; runner {cpu2 - cpu1:.1f} CPU-s, "
            f"emulator {emu2 - emu1:.1f} CPU-s"
        )
        if latencies:
            print(
                f"  latency job ended -> event at the supervisor: mean {statistics.mean(latencies):.1f} s, "
                f"p50 {pct(latencies, 0.5):.1f} s, p95 {pct(latencies, 0.95):.1f} s, max {max(latencies):.1f} s "
                f"(poll {args.poll:g} s: a wait sees the end on its next describe, mean about poll/2, then <= 1 s to "
                f"the supervisor)"
            )
        p50 = pct(latencies, 0.5) if latencies else float("nan")
        print(
            f"SUMMARY waits={n} poll={args.poll:g}s cpu_per_wait_hour={per_wait_hour:.3f} "
            f"(x{per_wait_hour / TARGET_CPU_PER_WAIT_HOUR:.2f}) kb_per_wait={bytes_per_wait / 1024:.0f} "
            f"(x{bytes_per_wait / TARGET_BYTES_PER_WAIT:.2f}) marginal_kb={marginal / 1024:.0f} latency_p50={p50:.1f}s "
            f"startup={warm_s:.0f}s wall={time.time() - started:.0f}s"
        )
    finally:
        if supervisor is not None and supervisor.is_alive():
            supervisor.kill(signal.SIGINT, escalation_delay=10, force=True)
        emulator.terminate()
        emulator.wait(30)
        if args.keep_logs:
            print(f"trigger logs kept under {home / 'logs'}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", type=int, default=1000, help="concurrent waits (default 1000)")
    parser.add_argument("--poll", type=float, default=60.0, help="poke_interval of every trigger, s (default 60)")
    parser.add_argument("--hold", type=float, default=180.0, help="the measured window with every job InProgress, s")
    parser.add_argument("--complete-over", type=float, default=60.0, help="jobs end spread over this many s")
    parser.add_argument("--kinds", default="labeling", help="labeling,training,transform: round-robin over the waits")
    parser.add_argument("--per-loop", type=int, default=50, help="triggers handed to the runner a loop (default 50)")
    parser.add_argument("--startup-timeout", type=float, default=1800.0, help="s for every wait's first describe")
    parser.add_argument("--time-scale", type=float, default=1e6, help="the emulator's sim clock outside the gate")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary AIRFLOW_HOME with the logs")
    parser.add_argument("--in-process", action="store_true", help="tracemalloc of N waits in this process's loop")
    parser.add_argument("--client-per-wait", action="store_true", help="with --in-process: a client each, as before")
    parser.add_argument("--serve-emulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_emulator:
        serve_emulator(args.time_scale)
    elif args.in_process:
        run_in_process(args)
    else:
        run_bench(args)


if __name__ == "__main__":
    main()
