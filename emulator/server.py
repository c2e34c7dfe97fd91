"""The wire layer: one WSGI application on one loopback port.

Requests for the labeling-job operations (`X-Amz-Target: SageMaker.<Op>` for the four labeling ops) go to our own
handlers; everything else (S3, CloudWatch Logs, STS, IAM, the rest of SageMaker) goes to moto's server backends,
which share one in-process state with ours. The admin paths under `/_emulator/` are the emulator's own.
This module routes and translates; it never decides job behaviour.
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

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def _region_and_service(environ: dict) -> tuple[str, str]:
    match = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if match:
        return match.group(1), match.group(2)
    return "us-east-1", ""


class EmulatorApp:
    def __init__(self, faults: FaultInjector | None = None) -> None:
        self.faults = faults or FaultInjector()
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.json_handlers: dict[str, JsonHandler] = {}
        self.started_at = time.time()

    def register_json(self, target: str, handler: JsonHandler) -> None:
        self.json_handlers[target] = handler

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
        if path == "/_emulator/health":
            return _respond(start_response, 200, {"status": "ok", "uptime_seconds": time.time() - self.started_at})
        if path == "/_emulator/faults":
            if environ.get("REQUEST_METHOD") == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                try:
                    config = FaultConfig.from_dict(json.loads(environ["wsgi.input"].read(length) or b"{}"))
                except (ValueError, TypeError) as exc:
                    return _respond(start_response, 400, {"error": str(exc)})
                self.faults.configure(config)
            return _respond(start_response, 200, self.faults.snapshot())
        return _respond(start_response, 404, {"error": f"unknown admin path {path}"})


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

    def __init__(self, host: str = "127.0.0.1", port: int = 0, app: EmulatorApp | None = None) -> None:
        self.app = app or build_app()
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


def build_app(faults: FaultConfig | None = None, time_scale: float = 1.0) -> EmulatorApp:
    """The application with every handler of ours registered."""
    from emulator.labeling.responses import register

    app = EmulatorApp(FaultInjector(faults))
    app.labeling = register(app, time_scale=time_scale)
    return app
