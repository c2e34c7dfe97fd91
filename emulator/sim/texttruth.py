"""The true class of each seeded text: what the simulated workers know when they label a text-classification job.

`seed-text` registers `(text, class name)` pairs here through the endpoint (`POST /_emulator/text-truth`); a
labeling job looks a data object's `source` up by its exact text. A text the emulator does not know has no answer
(`lookup` returns None) — the job must fail saying so, never guess. Texts are kept as SHA-256 digests of their UTF-8
bytes, so 10,000 headlines cost well under a megabyte. `check` (`POST /_emulator/text-truth/check`) scores a run's
final labels against the same truth: an emulator-only measure, since AWS knows no true class.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class TextTruth:
    """Thread-safe map from an exact `source` text to its true class name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._classes: dict[bytes, str] = {}

    def register(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Add `(text, class name)` pairs; returns how many distinct texts this call carried.

        Registering a known text again with the same class is a no-op; with another class it is a ValueError naming
        the text and both classes, and nothing of that call is registered.
        """
        staged: dict[bytes, tuple[str, str]] = {}
        for text, class_name in pairs:
            if not isinstance(text, str) or not isinstance(class_name, str):
                raise ValueError(
                    f"text-truth pair must be (str, str), got ({type(text).__name__}, "
                    f"{type(class_name).__name__}) for {text!r}"
                )
            if not class_name:
                raise ValueError(f"text {text!r} has an empty class name")
            key = _digest(text)
            earlier = staged.get(key)
            if earlier is not None and earlier[1] != class_name:
                raise ValueError(f"text {text!r} is given both class {earlier[1]!r} and class {class_name!r}")
            staged[key] = (text, class_name)
        with self._lock:
            for key, (text, class_name) in staged.items():
                known = self._classes.get(key)
                if known is not None and known != class_name:
                    raise ValueError(f"text {text!r} is already registered with class {known!r}, not {class_name!r}")
            for key, (_, class_name) in staged.items():
                self._classes[key] = class_name
        return len(staged)

    def lookup(self, text: str) -> str | None:
        """The true class of exactly this text, or None if it was never registered."""
        key = _digest(text)
        with self._lock:
            return self._classes.get(key)

    def check(self, pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
        """Score `(text, class name)` labels against the truth: `checked` (texts it knows), `correct` (of those, the
        ones whose class is the true one) and `unknown` (texts never registered, so neither right nor wrong).

        A pair that is not `(str, str)` is a ValueError naming it.
        """
        keyed: list[tuple[bytes, str]] = []
        for text, class_name in pairs:
            if not isinstance(text, str) or not isinstance(class_name, str):
                raise ValueError(
                    f"text-truth pair must be (str, str), got ({type(text).__name__}, "
                    f"{type(class_name).__name__}) for {text!r:.100}"
                )
            keyed.append((_digest(text), class_name))
        checked = correct = 0
        with self._lock:
            for key, class_name in keyed:
                known = self._classes.get(key)
                if known is not None:
                    checked += 1
                    correct += known == class_name
        return {"checked": checked, "correct": correct, "unknown": len(keyed) - checked}

    def __len__(self) -> int:
        with self._lock:
            return len(self._classes)


def _pairs_from_body(raw: bytes, route: str) -> list[tuple[Any, Any]]:
    """The `[[text, class], ...]` of a POSTed `{"pairs": ...}` body; a ValueError naming the fault otherwise."""
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{route} body is not JSON: {exc}") from None
    pairs = body.get("pairs") if isinstance(body, dict) else None
    if not isinstance(pairs, list):
        raise ValueError(f'{route} body must be {{"pairs": [[text, class], ...]}}')
    for number, pair in enumerate(pairs):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"{route} pair {number} must be [text, class], got {pair!r:.100}")
    return [(text, class_name) for text, class_name in pairs]


def admin_route(truth: TextTruth) -> Callable[[str, bytes], tuple[int, Any]]:
    """The `/_emulator/text-truth` admin route: POST `{"pairs": [[text, class], ...]}` registers them (400 naming
    the fault if a pair is malformed or contradicts a known text); GET tells how many texts are known."""

    def handle(method: str, raw: bytes) -> tuple[int, Any]:
        if method == "GET":
            return 200, {"texts": len(truth)}
        if method != "POST":
            return 405, {"error": f"{method} is not supported on the text-truth route: POST pairs or GET a count"}
        try:
            registered = truth.register(_pairs_from_body(raw, "text-truth"))
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 200, {"registered": registered, "texts": len(truth)}

    return handle


def check_route(truth: TextTruth) -> Callable[[str, bytes], tuple[int, Any]]:
    """The `/_emulator/text-truth/check` admin route: POST `{"pairs": [[text, class], ...]}` answers
    `{"checked", "correct", "unknown"}` (see `TextTruth.check`); 400 naming the fault for a malformed body."""

    def handle(method: str, raw: bytes) -> tuple[int, Any]:
        if method != "POST":
            return 405, {"error": f"{method} is not supported on the text-truth check route: POST pairs"}
        try:
            return 200, truth.check(_pairs_from_body(raw, "text-truth check"))
        except ValueError as exc:
            return 400, {"error": str(exc)}

    return handle
