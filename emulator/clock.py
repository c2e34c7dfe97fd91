"""Simulated time, shared by every kind of job the emulator runs (labeling, training, transform)."""

from __future__ import annotations

import threading


class SimClock:
    """Simulated time: a job's modelled durations pass `scale` times faster than the wall clock."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"time scale must be > 0, got {scale}")
        self.scale = scale

    def wait(self, sim_seconds: float, interrupt: threading.Event) -> bool:
        """Let `sim_seconds` of simulated time pass; True if interrupted (the job was asked to stop)."""
        return interrupt.wait(timeout=max(0.0, sim_seconds / self.scale))
