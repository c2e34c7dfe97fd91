"""Faults on demand: latency, throttling and server errors, off by default.

Set at start (`serve --latency-ms 20 --throttle-fraction 0.1 ...`) or at run time through the admin endpoint
`POST /_emulator/faults` with the same fields as JSON. A rule applies to every request unless `only` names the
operations or services it is limited to (`"SageMaker.DescribeLabelingJob"`, `"s3"`). Jobs can be made to fail on
purpose too: labeling, training or transform jobs whose name contains a given text, at a stage of their kind
(`JOB_FAILURE_STAGES`).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields

# The stages at which a job of each kind can be made to fail, in the order the job passes them.
JOB_FAILURE_STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "labeling": ("fail_job", ("initializing", "human", "training")),
    "training": ("fail_training_job", ("starting", "downloading", "training", "uploading")),
    "transform": ("fail_transform_job", ("starting", "transforming", "uploading")),
}


def _prefix(kind: str) -> str:
    return JOB_FAILURE_STAGES[kind][0]


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    throttle_fraction: float = 0.0
    error_fraction: float = 0.0
    # Operation names ("SageMaker.DescribeLabelingJob") or service names ("s3", "sagemaker"); empty = everything.
    only: list[str] = field(default_factory=list)
    # Labeling jobs whose name contains this fail on purpose at `fail_job_at` ("initializing", "human", "training").
    fail_job_name_contains: str = ""
    fail_job_at: str = "training"
    # Training jobs whose name contains this fail at `fail_training_job_at` (a secondary status, lowercased).
    fail_training_job_name_contains: str = ""
    fail_training_job_at: str = "training"
    # Batch-transform jobs whose name contains this fail at `fail_transform_job_at`.
    fail_transform_job_name_contains: str = ""
    fail_transform_job_at: str = "transforming"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("throttle_fraction", "error_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be within [0, 1], got {value}")
        if self.latency_ms < 0:
            raise ValueError(f"fault latency_ms must be >= 0, got {self.latency_ms}")
        for kind, (prefix, stages) in JOB_FAILURE_STAGES.items():
            stage = getattr(self, f"{prefix}_at")
            if stage not in stages:
                raise ValueError(f"fault {prefix}_at must be {'|'.join(stages)} for {kind} jobs, got {stage!r}")

    @classmethod
    def from_dict(cls, data: dict) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


class FaultInjector:
    """Decides, per request, whether to delay, throttle or fail it. Thread-safe; deterministic for a seed."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())
        self.throttled = 0
        self.errored = 0

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)

    def snapshot(self) -> dict:
        with self._lock:
            return {**asdict(self.config), "throttled": self.throttled, "errored": self.errored}

    def _applies(self, operation: str, service: str) -> bool:
        only = self.config.only
        return not only or operation in only or service in only

    def decide(self, operation: str, service: str) -> tuple[float, str | None]:
        """Return (delay in seconds, None | "throttle" | "error") for one request."""
        with self._lock:
            cfg = self.config
            if not self._applies(operation, service):
                return 0.0, None
            delay = cfg.latency_ms / 1000.0
            roll = self._rng.random()
            if roll < cfg.throttle_fraction:
                self.throttled += 1
                return delay, "throttle"
            if roll < cfg.throttle_fraction + cfg.error_fraction:
                self.errored += 1
                return delay, "error"
            return delay, None

    def job_failure_point(self, job_name: str, kind: str = "labeling") -> str | None:
        """The stage at which a `kind` job ("labeling", "training", "transform") named `job_name` must fail."""
        cfg = self.config
        prefix = _prefix(kind)
        contains = getattr(cfg, f"{prefix}_name_contains")
        if contains and contains.lower() in job_name.lower():
            return getattr(cfg, f"{prefix}_at")
        return None
