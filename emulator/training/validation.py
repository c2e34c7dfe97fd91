"""Request checks for training, model and transform operations.

Everything botocore's service model can say is checked by the project's one walker,
`groundtruth.requests.request_problems`, and answered as the service does: `ValidationException`,
`N validation errors detected`, each naming the field. On top, what the model cannot express but a transform job
needs: the JSONPath subset of `DataProcessing`, and the split types and sources the emulator reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from emulator.errors import validation_error
from groundtruth.requests import request_problems


def validate(operation_name: str, body: dict) -> None:
    problems = request_problems(body, operation_name)
    if operation_name == "CreateTransformJob" and not problems:
        problems = transform_problems(body)
    if problems:
        noun = "error" if len(problems) == 1 else "errors"
        raise validation_error(f"{len(problems)} validation {noun} detected: " + "; ".join(problems))


# -- the JSONPath subset of DataProcessing -------------------------------------------------------------------------
_NAME = r"[A-Za-z_][\w-]*"
_QUOTED = r"""'[^'\\]*'|"[^"\\]*\""""
_DOT = re.compile(rf"\$\.({_NAME})")
_BRACKETS = re.compile(rf"\$\[\s*((?:{_QUOTED})(?:\s*,\s*(?:{_QUOTED}))*)\s*\]")


@dataclass(frozen=True)
class JsonPathFilter:
    """`$` (the whole record), `$.key` or `$['key']` (one member's value), `$['a','b']` (an object of those
    members, in that order)."""

    expression: str
    keys: tuple[str, ...] | None  # None: the whole record
    single: bool  # `$.key`: the member's value itself

    def apply(self, record: object) -> object:
        if self.keys is None:
            return record
        if not isinstance(record, dict):
            raise ValueError(f"filter {self.expression} needs a JSON object, got {type(record).__name__}")
        if self.single:
            if self.keys[0] not in record:
                raise ValueError(f"filter {self.expression}: the record has no member {self.keys[0]!r}")
            return record[self.keys[0]]
        return {key: record[key] for key in self.keys if key in record}


def parse_filter(expression: str) -> JsonPathFilter:
    """ValueError for anything outside the subset, saying what is supported."""
    text = expression.strip()
    if text == "$":
        return JsonPathFilter(expression, None, False)
    if match := _DOT.fullmatch(text):
        return JsonPathFilter(expression, (match.group(1),), True)
    if match := _BRACKETS.fullmatch(text):
        keys = tuple(part.strip()[1:-1] for part in re.findall(_QUOTED, match.group(1)))
        return JsonPathFilter(expression, keys, len(keys) == 1)
    raise ValueError(f"JSONPath {expression!r} is outside the subset the emulator runs: $, $.key, $['key', ...]")


def transform_problems(body: dict) -> list[str]:
    problems = []
    processing = body.get("DataProcessing") or {}
    for field in ("InputFilter", "OutputFilter"):
        if field in processing:
            try:
                parse_filter(processing[field])
            except ValueError as exc:
                problems.append(f"DataProcessing.{field}: {exc}")
    transform_input = body.get("TransformInput") or {}
    split = transform_input.get("SplitType", "None")
    if split not in ("None", "Line"):
        problems.append(f"TransformInput.SplitType: the emulator splits None or Line, not {split}")
    if transform_input.get("CompressionType", "None") != "None":
        problems.append("TransformInput.CompressionType: the emulator reads uncompressed input only")
    source = (transform_input.get("DataSource") or {}).get("S3DataSource") or {}
    if source.get("S3DataType") == "AugmentedManifestFile":
        problems.append("TransformInput.DataSource.S3DataSource.S3DataType: AugmentedManifestFile is not supported")
    return problems
