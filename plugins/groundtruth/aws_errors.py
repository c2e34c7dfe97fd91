"""What an AWS error means, in one place: transient (ask again later), not found, or anything else.

Every caller that branches on an error code — the waits, the create retries, the S3 reads that treat a missing key
as "not there yet" — asks here instead of reading `Error.Code` itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

# Error codes that mean "ask again later", across the protocols botocore speaks (JSON, query, REST).
THROTTLING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "BandwidthLimitExceeded",
        "ProvisionedThroughputExceededException",
    }
)
TRANSIENT_ERROR_CODES = THROTTLING_ERROR_CODES | {
    "InternalFailure",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
}
NOT_FOUND_ERROR_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# S3 answers a missing key or bucket with these (HEAD requests carry only the status code).
S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})

_NOT_FOUND_MESSAGE = re.compile(r"not found|does not exist|could not find|cannot find", re.IGNORECASE)


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(error: BaseException) -> int:
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient_error(error: BaseException) -> bool:
    """Throttling, 5xx and dropped connections: worth asking again, never a reason to fail the task."""
    if isinstance(error, ClientError):
        status = http_status(error)
        return error_code(error) in TRANSIENT_ERROR_CODES or status >= 500 or status == 429
    return isinstance(error, ConnectionError | HTTPClientError)


def is_not_found_error(error: BaseException) -> bool:
    """A SageMaker resource that does not exist (some describe calls say so with a ValidationException)."""
    code = error_code(error)
    if code in NOT_FOUND_ERROR_CODES:
        return True
    message = str(error.response.get("Error", {}).get("Message", "")) if isinstance(error, ClientError) else ""
    return code == "ValidationException" and bool(_NOT_FOUND_MESSAGE.search(message))


def is_missing_s3_object(error: BaseException) -> bool:
    """An S3 key or bucket that does not exist."""
    return error_code(error) in S3_MISSING_CODES


def backoff_delay(
    attempt: int, *, base: float = 2.0, cap: float = 300.0, rand: Callable[[float, float], float] | None = None
) -> float:
    """
    Exponential backoff with "equal jitter" for the ``attempt``-th consecutive transient error (0-based).

    Half of the delay is fixed so a throttled client really slows down; the random half spreads the many tasks that
    were throttled together.
    """
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    uniform = rand or random.uniform
    return ceiling / 2 + uniform(0, ceiling / 2)


def client_retries(response: dict) -> int:
    """How many times the client itself retried a call that then succeeded (botocore's `RetryAttempts`): a
    success after retries still says the service is pushing back."""
    return int(response.get("ResponseMetadata", {}).get("RetryAttempts") or 0)


def is_throttling_error(error: BaseException) -> bool:
    """The service asks for fewer requests (SlowDown, Throttling, 429; a throttled S3 HEAD carries only its 503)."""
    return error_code(error) in THROTTLING_ERROR_CODES or http_status(error) in (429, 503)
