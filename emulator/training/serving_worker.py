"""The inside of a script-mode model server: the SageMaker inference toolkit's handler contract, in a subprocess.

Run as `python serving_worker.py <model_dir> <code_dir> <module>` (standard library only: it must not import the
emulator). Loads `model_fn(model_dir)` from the user's module, then answers one request per stdin line
(`{"body": <base64>, "content_type": ..., "accept": ...}`) through `transform_fn(model, body, content_type, accept)`
or `input_fn(body, content_type)` → `predict_fn(data, model)` → `output_fn(prediction, accept)`, with the toolkit's
default JSON / JSON Lines / CSV encoders where a function is missing. Answers go to the protocol pipe (the original
stdout); the user's prints go to stderr, which the emulator writes to CloudWatch Logs.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
import traceback


def _lines(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if line.strip()]


def default_input_fn(body: bytes, content_type: str):
    kind = content_type.split(";")[0].strip()
    if kind == "application/json":
        return json.loads(body)
    if kind == "application/jsonlines":
        return [json.loads(line) for line in _lines(body)]
    if kind == "text/csv":
        return [[_number(cell) for cell in line.decode().split(",")] for line in _lines(body)]
    raise ValueError(f"no input_fn in the model's code, and the default decoder cannot read {content_type!r}")


def _number(cell: str):
    try:
        return float(cell)
    except ValueError:
        return cell


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else value


def default_output_fn(prediction, accept: str):
    kind = accept.split(";")[0].strip()
    prediction = _plain(prediction)
    if kind == "application/json":
        return json.dumps(prediction, default=_plain)
    if kind == "application/jsonlines":
        return "".join(json.dumps(_plain(item), default=_plain) + "\n" for item in prediction)
    if kind == "text/csv":
        rows = prediction if prediction and isinstance(prediction[0], list | tuple) else [[p] for p in prediction]
        return "".join(",".join(str(c) for c in row) + "\n" for row in rows)
    raise ValueError(f"no output_fn in the model's code, and the default encoder cannot write {accept!r}")


def default_predict_fn(data, model):
    if callable(model):
        return model(data)
    raise ValueError("no predict_fn in the model's code, and the model model_fn returned is not callable")


def main() -> None:
    model_dir, code_dir, module_name = sys.argv[1:4]
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # the user's prints and logging land in the job's log, never in the protocol
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    try:
        sys.path.insert(0, code_dir)
        module = importlib.import_module(module_name)
        if not hasattr(module, "model_fn"):
            raise AttributeError(f"{module_name}.py defines no model_fn(model_dir)")
        model = module.model_fn(model_dir)
    except BaseException:  # noqa: BLE001 - whatever the user's code raises (even SystemExit) is the answer
        send({"ok": False, "error": traceback.format_exc(limit=-3)})
        return
    send({"ok": True, "ready": True})
    transform_fn = getattr(module, "transform_fn", None)
    input_fn = getattr(module, "input_fn", default_input_fn)
    predict_fn = getattr(module, "predict_fn", default_predict_fn)
    output_fn = getattr(module, "output_fn", default_output_fn)
    for line in sys.stdin:
        request = json.loads(line)
        body = base64.b64decode(request["body"])
        content_type, accept = request["content_type"], request["accept"]
        try:
            if transform_fn is not None:
                result = transform_fn(model, body, content_type, accept)
            else:
                result = output_fn(predict_fn(input_fn(body, content_type), model), accept)
            response_type = accept
            if isinstance(result, tuple):
                result, response_type = result
            payload = result.encode("utf-8") if isinstance(result, str) else bytes(result)
            send({"ok": True, "body": base64.b64encode(payload).decode(), "content_type": response_type})
        except BaseException:  # noqa: BLE001 - as above, for one request
            send({"ok": False, "error": traceback.format_exc(limit=-3)})


if __name__ == "__main__":
    main()
