"""Request validation against botocore's own SageMaker service model.

The service model shipped with botocore is the authority for what SageMaker accepts (required members, lengths,
patterns, ranges, enums). The walker is the project's one implementation, `groundtruth.requests.request_problems`;
here its findings are answered the way the service answers: `ValidationException`, `N validation errors detected`.
"""

from __future__ import annotations

from emulator.errors import validation_error
from groundtruth.requests import request_problems


def validate(operation_name: str, body: dict) -> None:
    problems = request_problems(body, operation_name)
    if problems:
        noun = "error" if len(problems) == 1 else "errors"
        raise validation_error(f"{len(problems)} validation {noun} detected: " + "; ".join(problems))
