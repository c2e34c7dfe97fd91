"""One batch-transform job's life: InProgress → Completed, or Failed / Stopped.

Each input object (S3Prefix: every key under the prefix, in key order; ManifestFile: the keys it lists) is split
(`SplitType Line`: one record per non-empty line; `None`: the whole object), filtered (`InputFilter`), sent to the
model in batches (`SingleRecord`: one record per request; `MultiRecord`: as many lines as fit in `MaxPayloadInMB`),
joined with its input (`JoinSource Input`: the answer under `SageMakerOutput`), filtered again (`OutputFilter`) and
assembled (`AssembleWith Line`) into `<S3OutputPath>/<relative input name>.out`, one output per record, in input
order. A record the model cannot answer, or a batch answered with the wrong number of records, fails the job with
a reason naming the object and the record: never a silently missing line. Objects are processed one after another
(`MaxConcurrentTransforms` is accepted and not parallelised).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emulator.clock import SimClock
from emulator.faults import FaultInjector
from emulator.labeling.storage import Storage
from emulator.training.data import DataError, S3Data, StorageError
from emulator.training.models import TransformJob
from emulator.training.runner import JobLog
from emulator.training.serving import ModelServer, ServingError, open_server
from emulator.training.validation import JsonPathFilter, parse_filter

log = logging.getLogger("emulator.transform")

TRANSFORM_LOG_GROUP = "/aws/sagemaker/TransformJobs"
STARTING_SECONDS = 180.0  # the model's instances launched and the container pulled
UPLOAD_SECONDS = 5.0
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_INVOCATION_TIMEOUT = 600.0


class JobFailed(Exception):
    """The job cannot go on; the message becomes its FailureReason."""


class JobStopped(Exception):
    """StopTransformJob was called."""


@dataclass
class Record:
    number: int  # 1-based, within its object
    text: str  # as sent to the model (after InputFilter)
    source: object | None  # the parsed input record, for JoinSource Input


class TransformRunner:
    def __init__(
        self,
        job: TransformJob,
        clock: SimClock,
        faults: FaultInjector,
        storage: Storage | None = None,
    ) -> None:
        self.job = job
        self.clock = clock
        self.faults = faults
        self.storage = storage or Storage(job.account_id)
        self.data = S3Data(self.storage)
        req = job.request
        self.input = req["TransformInput"]
        self.output = req["TransformOutput"]
        processing = req.get("DataProcessing") or {}
        self.input_filter: JsonPathFilter = parse_filter(processing.get("InputFilter", "$"))
        self.output_filter: JsonPathFilter = parse_filter(processing.get("OutputFilter", "$"))
        self.join = processing.get("JoinSource", "None") == "Input"
        self.split_lines = self.input.get("SplitType", "None") == "Line"
        # Without a split the whole object is the one record of its request, whatever the strategy says.
        self.multi = self.split_lines and req.get("BatchStrategy", "MultiRecord") == "MultiRecord"
        self.max_payload = int(req.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)) * 1024 * 1024 or None
        self.content_type = self.input.get("ContentType", "application/octet-stream")
        self.accept = self.output.get("Accept", self.content_type)
        self.line_assembly = self.output.get("AssembleWith", "None") == "Line"
        client = req.get("ModelClientConfig") or {}
        self.timeout = float(client.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT))
        self.log = JobLog(self.storage, job, group=TRANSFORM_LOG_GROUP)
        instance = hashlib.sha256(job.arn.encode()).hexdigest()[:17]
        self.log.stream = f"{job.name}/i-{instance}-{int(job.now())}"

    def run(self) -> None:
        server: ModelServer | None = None
        try:
            self._inject("starting")
            self._wait(STARTING_SECONDS)
            if not self.job.start():
                raise JobStopped
            with tempfile.TemporaryDirectory(prefix=f"sm-transform-{self.job.name}-") as workdir:
                self.log.measure_from_now()
                try:
                    server = open_server(
                        self.job.model,
                        self.data,
                        Path(workdir),
                        dict(self.job.request.get("Environment") or {}),
                        self.log.line,
                        self.job.stop_requested,
                        self.timeout,
                    )
                    self._inject("transforming")
                    self._transform_all(server)
                except ServingError as exc:
                    if self.job.stop_requested.is_set():
                        raise JobStopped from exc
                    raise JobFailed(str(exc)) from exc
                finally:
                    if server is not None:
                        server.close()
            self._inject("uploading")
            self._wait(UPLOAD_SECONDS)
            self.job.complete()
        except JobStopped:
            self.job.stopped()
        except JobFailed as failure:
            self.job.fail(str(failure))
        except Exception as exc:  # an emulator bug: the job fails with a reason instead of hanging forever
            log.exception("transform job %s crashed", self.job.name)
            self.job.fail(f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            self.log.flush()
        log.info("transform job %s %s %s", self.job.name, self.job.status, self.job.failure_reason or "")

    def _wait(self, sim_seconds: float) -> None:
        if self.job.wait(self.clock, sim_seconds):
            raise JobStopped

    def _inject(self, stage: str) -> None:
        if self.faults.job_failure_point(self.job.name, kind="transform") == stage:
            raise JobFailed(f"InternalServerError: injected failure during {stage} (emulator fault rule)")

    # -- the work ------------------------------------------------------------------------------------------------
    def _transform_all(self, server: ModelServer) -> None:
        source = self.input["DataSource"]["S3DataSource"]
        try:
            objects = self.data.objects(source, "TransformInput")
        except (DataError, StorageError) as exc:
            raise JobFailed(f"ClientError: {exc}") from exc
        out_base = self.output["S3OutputPath"].rstrip("/")
        for relative, uri in objects:
            if self.job.stop_requested.is_set():
                raise JobStopped
            started = time.monotonic()
            try:
                raw = self.data.read(uri)
            except StorageError as exc:
                raise JobFailed(f"ClientError: {exc}") from exc
            records = self._records(raw, uri)
            outputs: list[str] = []
            for batch in self._batches(records, uri):
                if self.job.stop_requested.is_set():
                    raise JobStopped
                outputs += self._answer(server, batch, uri)
            self.job.advance(time.monotonic() - started)
            joiner = "\n" if self.line_assembly else ""
            body = joiner.join(outputs) + (joiner if outputs and self.line_assembly else "")
            self.data.write(f"{out_base}/{relative}.out", body.encode("utf-8"))
            self.log.line(f"{uri}: {len(records)} records → {out_base}/{relative}.out")

    def _records(self, raw: bytes, uri: str) -> list[Record]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobFailed(f"ClientError: {uri} is not UTF-8 text: {exc}") from exc
        pieces = [line for line in text.splitlines() if line.strip()] if self.split_lines else [text]
        needs_json = self.join or self.input_filter.keys is not None
        records = []
        for number, piece in enumerate(pieces, start=1):
            parsed = None
            sent = piece
            if needs_json:
                try:
                    parsed = json.loads(piece)
                except json.JSONDecodeError as exc:
                    raise JobFailed(
                        f"ClientError: record {number} of {uri} is not JSON ({exc.msg}); InputFilter and "
                        "JoinSource work on JSON records"
                    ) from exc
                if self.input_filter.keys is not None:
                    try:
                        sent = json.dumps(self.input_filter.apply(parsed))
                    except ValueError as exc:
                        raise JobFailed(f"ClientError: record {number} of {uri}: {exc}") from exc
            records.append(Record(number, sent, parsed))
        return records

    def _batches(self, records: list[Record], uri: str) -> list[list[Record]]:
        if not self.multi:
            return [[r] for r in records]
        batches: list[list[Record]] = []
        current: list[Record] = []
        size = 0
        for record in records:
            length = len(record.text.encode("utf-8")) + 1
            if self.max_payload and length > self.max_payload:
                raise JobFailed(f"ClientError: record {record.number} of {uri} is {length} bytes, over MaxPayloadInMB")
            if current and self.max_payload and size + length > self.max_payload:
                batches.append(current)
                current, size = [], 0
            current.append(record)
            size += length
        if current:
            batches.append(current)
        return batches

    def _answer(self, server: ModelServer, batch: list[Record], uri: str) -> list[str]:
        where = f"{uri} record {batch[0].number}" + (f"-{batch[-1].number}" if len(batch) > 1 else "")
        body = "".join(r.text + "\n" for r in batch) if self.multi else batch[0].text
        try:
            answer = server.invoke(body.encode("utf-8"), self.content_type, self.accept).decode("utf-8")
        except ServingError as exc:
            if self.job.stop_requested.is_set():
                raise
            raise JobFailed(f"{exc} ({where})") from exc
        except UnicodeDecodeError as exc:
            raise JobFailed(f"ClientError: the model's answer for {where} is not UTF-8 text") from exc
        if self.multi:
            answers = [line for line in answer.splitlines() if line.strip()]
            if len(answers) != len(batch):
                raise JobFailed(
                    f"ClientError: model {self.job.request['ModelName']} answered {len(answers)} records for a "
                    f"batch of {len(batch)} ({where}); with SplitType Line and MultiRecord every input line needs "
                    "one output line"
                )
        else:
            answers = [answer.rstrip("\r\n")]
        return [self._shape(record, text, uri) for record, text in zip(batch, answers, strict=True)]

    def _shape(self, record: Record, answer: str, uri: str) -> str:
        if not self.join and self.output_filter.keys is None:
            return answer
        try:
            output = json.loads(answer)
        except json.JSONDecodeError as exc:
            raise JobFailed(
                f"ClientError: the model's answer to record {record.number} of {uri} is not JSON ({exc.msg}); "
                "JoinSource and OutputFilter work on JSON"
            ) from exc
        if self.join:
            if not isinstance(record.source, dict):
                raise JobFailed(f"ClientError: record {record.number} of {uri} is not a JSON object to join with")
            output = {**record.source, "SageMakerOutput": output}
        try:
            return json.dumps(self.output_filter.apply(output))
        except ValueError as exc:
            raise JobFailed(f"ClientError: record {record.number} of {uri}: {exc}") from exc
