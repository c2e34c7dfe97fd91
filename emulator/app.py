"""The composition root: the one place that builds the backends, hands each what it needs, and routes the wire to
them. Nothing below it imports upwards, so backends and the wire layer never know about each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from emulator.clock import SimClock
from emulator.faults import FaultConfig, FaultInjector
from emulator.labeling.models import LabelingBackend, LabelingJob
from emulator.labeling.responses import register as register_labeling
from emulator.labeling.runner import JobRunner
from emulator.server import WireApp
from emulator.sim.texttruth import TextTruth
from emulator.sim.texttruth import admin_route as text_truth_route
from emulator.sim.texttruth import check_route as text_truth_check_route
from emulator.tags import TagRouter
from emulator.training.models import ModelBackend, TrainingBackend, TransformBackend
from emulator.training.responses import register as register_training
from emulator.training.runner import TrainingRunner
from emulator.training.transform import TransformRunner


@dataclass(frozen=True)
class Emulator:
    """The composed emulator: a WSGI application, with typed access to the state behind it (tests look at it)."""

    wire: WireApp
    faults: FaultInjector
    labeling: LabelingBackend
    text_truth: TextTruth
    training: TrainingBackend
    models: ModelBackend
    transforms: TransformBackend

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        return self.wire(environ, start_response)


def build_app(faults: FaultConfig | None = None, time_scale: float = 1.0) -> Emulator:
    """Every backend of the emulator, on one simulated clock, behind one wire layer."""
    injector = FaultInjector(faults)
    wire = WireApp(injector)
    clock = SimClock(time_scale)
    text_truth = TextTruth()
    wire.register_admin("/_emulator/text-truth", text_truth_route(text_truth))
    wire.register_admin("/_emulator/text-truth/check", text_truth_check_route(text_truth))

    def run_labeling_job(job: LabelingJob, job_clock: SimClock) -> None:
        JobRunner(job, job_clock, injector, text_truth=text_truth).run()

    labeling = LabelingBackend(clock, run_job=run_labeling_job)
    register_labeling(wire.register_json, labeling)
    models = ModelBackend()
    training = TrainingBackend(clock, run_job=lambda job, job_clock: TrainingRunner(job, job_clock, injector).run())
    transforms = TransformBackend(
        clock, models, run_job=lambda job, job_clock: TransformRunner(job, job_clock, injector).run()
    )
    register_training(wire.register_json, training, models, transforms)
    tags = TagRouter()  # one API for the tags of every resource; models and the rest stay moto's
    tags.add_owner("labeling-job", "labeling job", labeling.by_arn)
    tags.add_owner("training-job", "training job", training.by_arn)
    tags.add_owner("transform-job", "transform job", transforms.by_arn)
    tags.register(wire.register_json)
    return Emulator(
        wire=wire,
        faults=injector,
        labeling=labeling,
        text_truth=text_truth,
        training=training,
        models=models,
        transforms=transforms,
    )
