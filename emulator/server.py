"""The wire layer: one WSGI application on one loopback port, and the server thread that serves it.

An `X-Amz-Target` some backend registered goes to its handler, everything else to moto's server backends (which
share one in-process state with ours); `/_emulator/` paths go to the registered admin routes. It routes and
translates; which backends exist is the composition root's business (emulator/app.py).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from emulator.errors import ApiError, PassThrough
from emulator.faults import FaultConfig, FaultInjector

log = logging.getLogger("emulator")

# An operation handler takes (region, parsed JSON body) and returns a JSON-able response body, or raises ApiError.
JsonHandler = Callable[[str, dict], dict]
# An admin handler takes (HTTP method, raw request body) and returns (HTTP status, JSON-able body).
AdminHandler = Callable[[str, bytes], tuple[int, Any]]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def _region_and_service(environ: dict) -> tuple[str, str]:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1), match.group(2)
    return "us-east-1", ""


class _RememberingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host: moto finds out by listing and stat-ing its own
    package directory on every request, under one global lock (a third of an S3 request's CPU, serialized)."""

    def __init__(self, create_app: Callable) -> None:
        super().__init__(create_app)
        self._backend_of: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_of:  # moto calls this under its lock, so one thread fills an entry
            self._backend_of[host] = super().get_backend_for_host(host)
        return self._backend_of[host]


class WireApp:
    """The WSGI application: fault injection, then our JSON handlers, admin routes, or moto."""

    def __init__(self, faults: FaultInjector | None = None) -> None:
        self.faults = faults or FaultInjector()
        self.moto = _RememberingDispatcher(create_backend_app)
        self.json_handlers: dict[str, JsonHandler] = {}
        self.admin_routes: dict[str, AdminHandler] = {}
        self.started_at = time.time()
        self.register_admin("/_emulator/health", self._health)
        self.register_admin("/_emulator/faults", self._faults)

    def register_json(self, target: str, handler: JsonHandler) -> None:
        """Answer `X-Amz-Target: <target>` (e.g. `SageMaker.CreateLabelingJob`) with `handler`."""
        if target in self.json_handlers:
            raise ValueError(f"{target} is registered already")
        self.json_handlers[target] = handler

    def register_admin(self, path: str, handler: AdminHandler) -> None:
        """Answer `path` (under `/_emulator/`) with `handler`, for every method."""
        if not path.startswith("/_emulator/") or path in self.admin_routes:
            raise ValueError(f"admin path {path!r} must be new and under /_emulator/")
        self.admin_routes[path] = handler

    # -- WSGI ---------------------------------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_emulator/"):
            return self._admin(environ, start_response, path)

        target = environ.get("HTTP_X_AMZ_TARGET", "")
        region, service = _region_and_service(environ)
        operation = target or f"{service}.{environ.get('REQUEST_METHOD', '')}"
        delay, fault = self.faults.decide(operation, service)
        if delay:
            time.sleep(delay)  # injected network latency, the point of the fault
        if fault:
            return self._fault_response(start_response, fault, json_protocol=bool(target), service=service)

        handler = self.json_handlers.get(target)
        if handler is not None:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length else b"{}"
            try:
                return self._json_call(environ, start_response, handler, region, raw)
            except PassThrough:
                environ["wsgi.input"] = io.BytesIO(raw)
        return self.moto(environ, start_response)

    def _json_call(
        self, environ: dict, start_response: Callable, handler: JsonHandler, region: str, raw: bytes
    ) -> list[bytes]:
        try:
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as exc:
                raise ApiError("SerializationException", f"Request body is not valid JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise ApiError("SerializationException", "Request body must be a JSON object")
            result = handler(region, body)
            return _respond(start_response, 200, result)
        except ApiError as err:
            return _respond(start_response, err.status, {"__type": err.code, "message": err.message})
        except PassThrough:
            raise
        except Exception as exc:  # an emulator bug must answer like the service's 500, not kill the thread
            log.exception("internal error in %s", environ.get("HTTP_X_AMZ_TARGET"))
            return _respond(start_response, 500, {"__type": "InternalFailure", "message": str(exc)})

    def _fault_response(self, start_response: Callable, fault: str, json_protocol: bool, service: str) -> list[bytes]:
        if json_protocol:
            if fault == "throttle":
                return _respond(start_response, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
            return _respond(start_response, 500, {"__type": "InternalFailure", "message": "Injected server error"})
        if service == "s3":
            code, status = ("SlowDown", 503) if fault == "throttle" else ("InternalError", 500)
            body = f"<Error><Code>{code}</Code><Message>Injected {fault}</Message></Error>"
        else:
            code, status = ("Throttling", 400) if fault == "throttle" else ("InternalFailure", 500)
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
                f"<Message>Injected {fault}</Message></Error></ErrorResponse>"
            )
        data = body.encode()
        start_response(f"{status} ERR", [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
        return [data]

    def _admin(self, environ: dict, start_response: Callable, path: str) -> list[bytes]:
        handler = self.admin_routes.get(path)
        if handler is None:
            return _respond(start_response, 404, {"error": f"unknown admin path {path}"})
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            status, body = handler(environ.get("REQUEST_METHOD", "GET"), raw)
        except Exception as exc:  # an admin bug answers 500 instead of killing the request thread
            log.exception("internal error in admin path %s", path)
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        return _respond(start_response, status, body)

    def _health(self, method: str, raw: bytes) -> tuple[int, Any]:
        return 200, {"status": "ok", "uptime_seconds": time.time() - self.started_at}

    def _faults(self, method: str, raw: bytes) -> tuple[int, Any]:
        if method == "POST":
            try:
                self.faults.configure(FaultConfig.from_dict(json.loads(raw or b"{}")))
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
        return 200, self.faults.snapshot()


def _respond(start_response: Callable, status: int, body: Any) -> list[bytes]:
    data = json.dumps(body, default=_json_default).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(data)))],
    )
    return [data]


def _json_default(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()  # JSON 1.1 timestamps travel as epoch seconds
    raise TypeError(f"cannot serialize {type(value).__name__}")


class EmulatorServer:
    """The emulator on a loopback port, in a background thread (tests) or the foreground (`serve`)."""

    def __init__(self, host: str, port: int, app: Callable[[dict, Callable], Iterable[bytes]]) -> None:
        self.app = app  # emulator.app.build_app() composes it
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="emulator-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
