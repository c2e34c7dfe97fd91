"""Tags on the jobs the emulator runs itself (labeling, training, transform): AddTags / ListTags / DeleteTags are one
API for every SageMaker resource, so one router answers them and hands any other ARN (models, ...) to moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from emulator.errors import PassThrough, not_found
from emulator.labeling.validation import validate


class Tagged(Protocol):
    tags: list[dict[str, str]]
    lock: Any


# What the wire layer offers: route `X-Amz-Target` to a handler of (region, JSON body) -> JSON body.
AddJsonHandler = Callable[[str, Callable[[str, dict], dict]], None]


class TagRouter:
    def __init__(self) -> None:
        self._owners: list[tuple[str, str, Callable[[str], Tagged | None]]] = []

    def add_owner(self, resource_type: str, noun: str, find: Callable[[str], Tagged | None]) -> None:
        """Resources whose ARN holds `:<resource_type>/` are found by `find(arn)`."""
        self._owners.append((f":{resource_type}/", noun, find))

    def _resource(self, arn: str) -> Tagged:
        for marker, noun, find in self._owners:
            if marker in arn:
                resource = find(arn)
                if resource is None:
                    raise not_found(f"Could not find {noun} {arn}")
                return resource
        raise PassThrough

    def add_tags(self, region: str, body: dict) -> dict:
        resource = self._resource(body.get("ResourceArn", ""))
        validate("AddTags", body)
        with resource.lock:
            existing = {t["Key"]: t for t in resource.tags}
            existing.update({t["Key"]: dict(t) for t in body["Tags"]})
            resource.tags = list(existing.values())
        return {"Tags": body["Tags"]}

    def list_tags(self, region: str, body: dict) -> dict:
        resource = self._resource(body.get("ResourceArn", ""))
        validate("ListTags", body)
        with resource.lock:
            return {"Tags": [dict(t) for t in resource.tags]}

    def delete_tags(self, region: str, body: dict) -> dict:
        resource = self._resource(body.get("ResourceArn", ""))
        validate("DeleteTags", body)
        with resource.lock:
            resource.tags = [t for t in resource.tags if t["Key"] not in body["TagKeys"]]
        return {}

    def register(self, add_json_handler: AddJsonHandler) -> None:
        for op, handler in {
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }.items():
            add_json_handler(f"SageMaker.{op}", handler)
