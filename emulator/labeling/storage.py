"""The labeling-job state machine's view of the other services, backed directly by moto's in-process backends.

Jobs read manifests and images from S3, write their outputs there, publish training logs to CloudWatch Logs and
register their final model as a SageMaker Model — in the same state boto3 clients see through the endpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlparse

from moto.logs.models import logs_backends
from moto.s3.models import s3_backends
from moto.sagemaker.models import sagemaker_backends

from emulator import DEFAULT_ACCOUNT_ID


class StorageError(Exception):
    """A read the job needed failed; the message is written for a FailureReason."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"{uri!r} is not an s3:// URI")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def join(self, *parts: str) -> S3Location:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Location(self.bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class Storage:
    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID) -> None:
        self.account_id = account_id
        self._logs_lock = threading.Lock()

    @property
    def _s3(self):
        return s3_backends[self.account_id]["aws"]

    def read(self, uri: str) -> bytes:
        loc = S3Location.parse(uri)
        try:
            key = self._s3.get_object(loc.bucket, loc.key)
        except Exception as exc:  # moto raises its own MissingBucket/MissingKey types
            raise StorageError(f"cannot read {loc.uri}: {type(exc).__name__}") from exc
        if key is None:
            raise StorageError(f"cannot read {loc.uri}: NoSuchKey")
        return key.value

    def exists(self, uri: str) -> bool:
        try:
            self.read(uri)
        except StorageError:
            return False
        return True

    def write(self, loc: S3Location, data: bytes | str) -> None:
        payload = data.encode() if isinstance(data, str) else data
        try:
            self._s3.put_object(loc.bucket, loc.key, payload)
        except Exception as exc:
            raise StorageError(f"cannot write {loc.uri}: {type(exc).__name__}") from exc

    # -- SageMaker models ----------------------------------------------------------------------------------------
    def _sagemaker(self, region: str):
        return sagemaker_backends[self.account_id][region]

    def create_model(
        self,
        region: str,
        name: str,
        model_data_url: str,
        role_arn: str,
        tags: list[dict],
        algorithm: str = "object-detection",
    ) -> str:
        container = {
            "Image": f"027400017018.dkr.ecr.{region}.amazonaws.com/groundtruth-{algorithm}:emulator",
            "ModelDataUrl": model_data_url,
        }
        model = self._sagemaker(region).create_model(name, role_arn, container, None, None, tags)
        return model.arn

    def model_data_url(self, region: str, model_arn: str) -> str:
        """The S3 URI of a SageMaker Model's artifacts, or StorageError naming the model."""
        name = model_arn.rsplit("/", 1)[-1]
        try:
            model = self._sagemaker(region).describe_model(name)
        except Exception as exc:
            raise StorageError(f"initial active learning model {model_arn} does not exist") from exc
        url = (model.primary_container or {}).get("ModelDataUrl")
        if not url:
            raise StorageError(f"initial active learning model {model_arn} has no ModelDataUrl")
        return url

    # -- CloudWatch Logs -----------------------------------------------------------------------------------------
    def put_log_events(self, region: str, group: str, stream: str, events: list[tuple[float, str]]) -> None:
        """Append (epoch seconds, message) events. Simulated jobs log in simulated time, which may run ahead of
        the wall clock, so events go straight to the stream instead of through PutLogEvents' 2-hour window."""
        backend = logs_backends[self.account_id][region]
        with self._logs_lock:
            if group not in backend.groups:
                backend.create_log_group(group, {})
            log_group = backend.groups[group]
            if stream not in log_group.streams:
                log_group.create_log_stream(stream)
            log_group.streams[stream].put_log_events(
                [{"timestamp": int(ts * 1000), "message": msg} for ts, msg in events]
            )
