"""One labeling job's life on its simulated clock: the schedule every task type shares.

Who labels what and when lives here (probe, training and validation batches, rounds of train → infer → calibrate →
auto-label → humans, stopping conditions); what an object, an answer, a learner and a label are for boxes, text or
images lives in tasks.py. Everything the job reports comes out of that training and calibration.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import Any

import numpy as np

from emulator.clock import SimClock
from emulator.faults import FaultInjector
from emulator.labeling.learner_process import LearnerProcess
from emulator.labeling.models import LabelingJob
from emulator.labeling.outputs import OutputWriter, read_model_artifact
from emulator.labeling.storage import S3Location, Storage, StorageError
from emulator.labeling.tasks import DataObject, JobFailed, TaskType, task_type
from emulator.sim.texttruth import TextTruth

log = logging.getLogger("emulator.labeling")

PROBE_BATCH = 10
MIN_OBJECTS_FOR_AUTO_LABELING = 1250
DEFAULT_MAX_CONCURRENT_TASKS = 1000
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class JobStopped(Exception):
    """StopLabelingJob was called."""


class JobRunner:
    def __init__(
        self,
        job: LabelingJob,
        clock: SimClock,
        faults: FaultInjector,
        storage: Storage | None = None,
        text_truth: TextTruth | None = None,
    ):
        self.job = job
        self.text_truth = text_truth or TextTruth()
        self.clock = clock
        self.faults = faults
        self.storage = storage or Storage(job.account_id)
        self.request = job.request
        self.htc = job.request["HumanTaskConfig"]
        seed = int.from_bytes(hashlib.sha256(job.name.lower().encode()).digest()[:8], "little")
        self.rng = np.random.default_rng(seed)
        self.seed = seed % (2**31)
        self.objects: list[DataObject] = []
        self.class_names: list[str] = []
        self.task: TaskType | None = None
        self.initial_model: Any = None
        self.initial_weights: bytes | None = None  # the initial model's weights: a learner may start from them
        self.initial_meta: dict = {}
        self.learner: LearnerProcess | None = None  # the job's learner, in a process of its own, while it auto-labels
        self.model: Any = None
        self.model_data_url: str | None = None  # S3 artifacts of self.model
        self.writer: OutputWriter | None = None
        self.workers = max(1, int(self.htc["NumberOfHumanWorkersPerDataObject"]))
        self.concurrency = int(self.htc.get("MaxConcurrentTaskCount", DEFAULT_MAX_CONCURRENT_TASKS))

    # -- the life ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._initialize()
            if not self.job.start():
                raise JobStopped
            self._label()
            status = self.job.complete(self._outputs(completed=True))
        except JobStopped:
            self.job.stopped(self._outputs(completed=False))
            status = "Stopped"
        except JobFailed as failure:
            self._fail(str(failure))
            return
        except Exception as exc:  # an emulator bug: the job fails with a reason instead of hanging forever
            log.exception("labeling job %s crashed", self.job.name)
            self._fail(f"InternalServerError: {type(exc).__name__}: {exc}")
            return
        finally:
            if self.learner is not None:
                self.learner.close()
        log.info("labeling job %s %s: %s", self.job.name, status, self.job.counters)

    def _now(self) -> float:
        return self.job.created_at + self.job.elapsed

    def _wait(self, sim_seconds: float) -> None:
        if self.clock.wait(sim_seconds, self.job.stop_requested):
            raise JobStopped
        self.job.advance(sim_seconds)

    def _check_stop(self) -> None:
        if self.job.stop_requested.is_set():
            raise JobStopped

    def _inject(self, point: str) -> None:
        if self.faults.job_failure_point(self.job.name) == point:
            raise JobFailed(f"InternalServerError: injected failure during {point} (emulator fault rule)")

    # -- Initializing --------------------------------------------------------------------------------------------
    def _initialize(self) -> None:
        req = self.request
        self._inject("initializing")
        self.class_names = self._read_label_categories()
        kind = "public" if "public-crowd" in self.htc["WorkteamArn"] else "private"
        self.task = task_type(req, self.class_names, self.text_truth, f"{kind}.{self.job.region}")
        ui = self.htc["UiConfig"]
        if "UiTemplateS3Uri" in ui:
            self._read(ui["UiTemplateS3Uri"], "the worker task template (UiConfig.UiTemplateS3Uri)")
        elif not ui.get("HumanTaskUiArn"):
            raise JobFailed("ClientError: UiConfig needs UiTemplateS3Uri or HumanTaskUiArn")
        manifest_uri = req["InputConfig"]["DataSource"].get("S3DataSource", {}).get("ManifestS3Uri")
        if not manifest_uri:
            raise JobFailed("ClientError: the emulator reads input from InputConfig.DataSource.S3DataSource only")
        self.objects = self._read_manifest(manifest_uri)
        output_base = S3Location.parse(req["OutputConfig"]["S3OutputPath"]).join(self.job.name)
        self.writer = OutputWriter(
            self.storage, output_base, self.job.name, req["LabelAttributeName"], self.class_names
        )
        algo = req.get("LabelingJobAlgorithmsConfig") or {}
        if algo.get("InitialActiveLearningModelArn"):
            self.initial_model = self._load_model(algo["InitialActiveLearningModelArn"])
        self.task.load(self.objects, self.storage, req["LabelAttributeName"])
        self._update_counters()
        self._wait(120 + 0.05 * len(self.objects))

    def _read(self, uri: str, what: str) -> bytes:
        try:
            return self.storage.read(uri)
        except StorageError as exc:
            raise JobFailed(f"ClientError: unable to read {what}: {exc}") from exc

    def _read_label_categories(self) -> list[str]:
        uri = self.request.get("LabelCategoryConfigS3Uri")
        if not uri:
            raise JobFailed("ClientError: LabelCategoryConfigS3Uri is required for built-in task types")
        raw = self._read(uri, "the label category configuration file (LabelCategoryConfigS3Uri)")
        try:
            labels = [entry["label"] for entry in json.loads(raw)["labels"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise JobFailed(
                f'ClientError: label category configuration {uri} must be JSON like {{"labels": [{{"label": "Bird"}}]}}'
            ) from exc
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise JobFailed(f"ClientError: label category configuration {uri} lists no labels")
        return labels

    def _read_manifest(self, uri: str) -> list[DataObject]:
        raw = self._read(uri, "the input manifest")
        key = self.task.source_key
        objects = []
        for number, text in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError as exc:
                raise JobFailed(
                    f"ClientError: input manifest {uri} line {number} is not valid JSON: {exc.msg}"
                ) from exc
            if not isinstance(line, dict) or not isinstance(line.get(key), str):
                raise JobFailed(f'ClientError: input manifest {uri} line {number} has no "{key}" string')
            objects.append(DataObject(index=len(objects), line=line, source=line[key]))
        if not objects:
            raise JobFailed(f"ClientError: input manifest {uri} holds no data objects")
        return objects

    def _load_model(self, arn: str) -> Any:
        try:
            url = self.storage.model_data_url(self.job.region, arn)
            weights, meta = read_model_artifact(self.storage.read(url))
            model = self.task.load_model(weights, meta)
            self.initial_weights, self.initial_meta = weights, meta
            self.model_data_url = url
            return model
        except (StorageError, ValueError) as exc:
            raise JobFailed(f"ClientError: InitialActiveLearningModelArn {arn} is unusable: {exc}") from exc

    # -- InProgress ----------------------------------------------------------------------------------------------
    def _pending(self) -> list[DataObject]:
        return [o for o in self.objects if o.label is None and o.failure is None]

    def _label(self) -> None:
        order = [self.objects[i] for i in self.rng.permutation(len(self.objects))]
        queue = [o for o in order if o.failure is None and o.label is None]
        algo = self.request.get("LabelingJobAlgorithmsConfig")
        auto = bool(algo) and self.task.learns and len(queue) >= MIN_OBJECTS_FOR_AUTO_LABELING
        if algo and not self.task.learns:
            log.info("%s: no %s learner is simulated: humans label everything", self.job.name, self.task.algorithm)
        elif algo and not auto:
            log.info(
                "%s: %d objects, fewer than the %d auto-labeling needs: humans label everything",
                self.job.name,
                len(queue),
                MIN_OBJECTS_FOR_AUTO_LABELING,
            )

        if auto:  # from here on the task type's training, inference and calibration run in the job's own process
            self.learner = LearnerProcess(self.task, self.objects, self.job.name)
            self.task = self.learner
            if self.initial_weights is not None:
                self.initial_model = self.learner.load_model(self.initial_weights, self.initial_meta)

        def take(n: int) -> list[DataObject]:
            batch, queue[:] = queue[:n], queue[n:]
            return batch

        iteration = 1
        self._human_batch(iteration, take(PROBE_BATCH))
        if not auto:
            while queue and self._may_continue():
                iteration += 1
                self._human_batch(iteration, take(self._human_allowance(self.concurrency)))
            return
        if self.initial_model is None:
            iteration += 1
            self._human_batch(iteration, take(self._human_allowance(self.concurrency - PROBE_BATCH)))
        validation_size = math.ceil(len(self.objects) * (0.2 if len(self.objects) < 5000 else 0.1))
        iteration += 1
        validation = take(self._human_allowance(validation_size))
        self._human_batch(iteration, validation)
        self.writer.validation_set(iteration, [self._manifest_line(o) for o in validation])

        self.model = self.initial_model
        validation_ids = {o.index for o in validation}
        # The validation objects that share the pending objects' history: those that, had they been pending, would
        # still be pending now (not yet auto-labeled, not yet sent to humans). After the first round the pending
        # objects are what earlier models found hard; calibrating on every validation object would judge the
        # threshold on a kinder crowd than the one it is applied to.
        comparable = list(validation)
        first_round = True
        while self._pending() and self._may_continue():
            iteration += 1
            # A given initial model is calibrated and used at once; every later round trains (see _train) on all
            # human labels outside the validation set.
            if not (first_round and self.initial_model is not None):
                training = [o for o in self.objects if o.label and o.label.human and o.index not in validation_ids]
                self.model = self._train(iteration, training, validation)
            first_round = False
            pending = self._pending()
            predictions = self._infer(iteration, pending)
            threshold, val_confidence = self.task.calibrate(self.model, comparable, [p.confidence for p in predictions])
            auto_labeled = []
            if threshold is not None:
                for obj, pred in zip(pending, predictions, strict=True):
                    if pred.confidence >= threshold:
                        obj.label = self.task.machine_label(pred, self._now())
                        auto_labeled.append(obj)
            log.info(
                "%s iteration %d: threshold %s (calibrated on %d validation objects), auto-labeled %d of %d",
                self.job.name,
                iteration,
                threshold,
                len(comparable),
                len(auto_labeled),
                len(pending),
            )
            if auto_labeled:
                self.writer.auto_annotations(iteration, [(o.index, self._content(o)) for o in auto_labeled])
                self._update_counters()
            rest = sorted(
                ((p.confidence, o) for o, p in zip(pending, predictions, strict=True) if o.label is None),
                key=lambda pair: pair[0],
            )
            allowance = self._human_allowance(self.concurrency)
            sent_up_to = rest[min(allowance, len(rest)) - 1][0] if rest and allowance else -math.inf
            comparable = [
                o
                for o, c in zip(comparable, val_confidence, strict=True)
                if (threshold is None or c < threshold) and c > sent_up_to
            ]
            if rest and allowance and self._may_continue():
                self._human_batch(iteration, [o for _, o in rest[:allowance]])
            elif rest and not auto_labeled:
                break  # no human budget left and the model labels nothing more
            self.writer.manifest(self._labeled_lines(), final=False, iteration=iteration)

    def _human_allowance(self, wanted: int) -> int:
        limit = (self.request.get("StoppingConditions") or {}).get("MaxHumanLabeledObjectCount")
        if limit is None:
            return wanted
        return max(0, min(wanted, limit - self.job.counters["HumanLabeled"]))

    def _may_continue(self) -> bool:
        pct = (self.request.get("StoppingConditions") or {}).get("MaxPercentageOfInputDatasetLabeled")
        if pct is None:
            return True
        return self.job.counters["TotalLabeled"] * 100 < pct * len(self.objects)

    def _human_batch(self, iteration: int, batch: list[DataObject]) -> None:
        if not batch:
            return
        self._check_stop()
        self._inject("human")
        rounds = math.ceil(len(batch) / self.concurrency)
        queue_wait = 900 if "public-crowd" in self.htc["WorkteamArn"] else 300
        self._wait(queue_wait + rounds * 0.8 * self.htc["TaskTimeLimitInSeconds"] + 60)
        ts = self._now()
        entries = []
        for obj, answer in zip(batch, self.task.human_labels(batch, self.workers, self.rng, ts), strict=True):
            self.writer.worker_response(iteration, obj.index, answer.contents, answer.worker_ids, ts)
            obj.label = answer.label
            entries.append((obj.index, self._content(obj)))
        self.writer.consolidation(iteration, entries, ts)
        self._update_counters()
        self.writer.manifest(self._labeled_lines(), final=False, iteration=iteration)

    def _train(self, iteration: int, training: list[DataObject], validation: list[DataObject]) -> Any:
        self._check_stop()
        self._inject("training")
        warm = self.initial_weights is not None
        name = self.writer.training_job_name(iteration)
        started = self._now()
        config = self.task.training_config(len(training), warm)
        events: list[tuple[float, str]] = [
            (started, f"[{_log_time(started)} INFO] Final configuration: {_py2_dict(config)}")
        ]

        def on_epoch(epoch: int, score: float) -> None:
            ts = started + 60 * (epoch + 1)
            events.append(
                (
                    ts,
                    f"[{_log_time(ts)} INFO] #quality_metric: host=algo-1, epoch={epoch}, "
                    f"{self.task.metric} <score>=({score})",
                )
            )

        model = self.task.train(training, validation, self.initial_weights, self.seed, on_epoch)
        self._wait(self.task.train_seconds(len(training)))
        weights, model_format = self.task.model_bytes(model)
        meta = {
            "format": model_format,
            "training_job_name": name,
            "labeling_job_name": self.job.name,
            "iteration": iteration,
            "num_training_samples": len(training),
            "class_names": self.class_names,
        }
        self.model_data_url = self.writer.model_artifact(iteration, name, weights, meta).uri
        self.storage.put_log_events(self.job.region, TRAINING_LOG_GROUP, f"{name}/algo-1-{int(started)}", events)
        return model

    def _infer(self, iteration: int, pending: list[DataObject]) -> list:
        self._check_stop()
        predictions = self.task.predict(self.model, pending)
        self._wait(self.task.infer_seconds(len(pending)))
        self.writer.inference(iteration, *self.task.inference_records(pending, predictions))
        return predictions

    # -- outputs -------------------------------------------------------------------------------------------------
    def _content(self, obj: DataObject) -> dict:
        return self.task.content(obj, self.writer)

    def _manifest_line(self, obj: DataObject) -> dict:
        line = dict(obj.line)
        if obj.label is not None:
            line.update(self._content(obj))
        elif obj.failure is not None:
            line[f"{self.request['LabelAttributeName']}-metadata"] = {
                "failure-reason": obj.failure,
                "human-annotated": "no",
                "job-name": f"labeling-job/{self.job.name.lower()}",
            }
        return line

    def _labeled_lines(self) -> list[dict]:
        return [self._manifest_line(o) for o in self.objects if o.label is not None or o.failure is not None]

    def _update_counters(self) -> None:
        # a label the input already carried was nobody's work in this job: it is in no counter
        ours = [o for o in self.objects if o.label is not None and not o.prelabeled]
        human = sum(1 for o in ours if o.label.human)
        failed = sum(1 for o in self.objects if o.failure)
        kept = sum(1 for o in self.objects if o.prelabeled)
        self.job.progress(
            human=human,
            machine=len(ours) - human,
            failed=failed,
            unlabeled=len(self.objects) - len(ours) - failed - kept,
        )

    def _outputs(self, completed: bool) -> dict[str, str]:
        """Write the final manifest (of the labeled part, when stopped) and say where the job's outputs are."""
        output: dict[str, str] = {}
        if self.writer is not None:
            output["OutputDatasetS3Uri"] = self.writer.manifest(self._labeled_lines(), final=True).uri
            if self.model is not None and completed:
                output["FinalActiveLearningModelArn"] = self._register_final_model()
        self._update_counters()
        return output

    def _register_final_model(self) -> str:
        """The last round's model as a SageMaker Model, usable as another job's InitialActiveLearningModelArn."""
        name = self.writer.training_job_name(0).replace("-train-0", "-final")
        return self.storage.create_model(
            self.job.region,
            name,
            self.model_data_url,
            self.request["RoleArn"],
            [{"Key": "sagemaker:labeling-job", "Value": self.job.name}],
            algorithm=self.task.algorithm,
        )

    def _fail(self, reason: str) -> None:
        self.job.fail(reason)
        log.info("labeling job %s Failed: %s", self.job.name, reason)


def _log_time(ts: float) -> str:
    return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(ts))


def _py2_dict(values: dict[str, str]) -> str:
    # The built-in algorithm logs its configuration as a Python 2 dict repr; the notebook parses exactly that.
    return "{" + ", ".join(f"u'{k}': u'{v}'" for k, v in values.items()) + "}"
