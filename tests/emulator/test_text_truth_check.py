"""The emulator-only truth check for text labels: `POST /_emulator/text-truth/check` and `truth_check` against it."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib import error as urlerror
from urllib import request as urlrequest

import pytest

from groundtruth.active_learning_report import truth_check


@pytest.fixture(scope="module")
def known(emulator):
    """Six texts the emulator knows, unique to this module so no other test's corpus contradicts them."""
    tag = uuid.uuid4().hex[:8]
    pairs = [(f"truth-check {tag} headline {n}", "betm"[n % 4]) for n in range(6)]
    emulator.app.text_truth.register(pairs)
    return pairs


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urlrequest.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urlrequest.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urlerror.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_check_route_counts_right_wrong_and_unknown(emulator, known):
    wrong = [(known[0][0], "m" if known[0][1] != "m" else "b"), (known[1][0], "no such class")]
    unknown = [("truth-check a text nobody registered", "b")]
    body = json.dumps({"pairs": [list(p) for p in [*known[2:], *wrong, *unknown]]}).encode()
    status, answer = _post(emulator.url + "/_emulator/text-truth/check", body)
    assert status == 200
    assert answer == {"checked": 6, "correct": 4, "unknown": 1}


def test_check_does_not_register_anything(emulator, known):
    before = len(emulator.app.text_truth)
    truth_check(emulator.url, [("truth-check a text checked but never registered", "b")])
    assert len(emulator.app.text_truth) == before
    assert emulator.app.text_truth.lookup("truth-check a text checked but never registered") is None


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        (b"not json", "not JSON"),
        (b'{"pairs": "a"}', '{"pairs": [[text, class], ...]}'),
        (b'{"pairs": [["only a text"]]}', "pair 0 must be [text, class]"),
        (b'{"pairs": [["a text", 3]]}', "must be (str, str)"),
    ],
)
def test_check_route_refuses_a_bad_body_with_400(emulator, body, fault):
    status, answer = _post(emulator.url + "/_emulator/text-truth/check", body)
    assert status == 400
    assert fault in answer["error"]


def test_check_route_answers_405_to_get(emulator):
    with pytest.raises(urlerror.HTTPError) as caught:
        urlrequest.urlopen(emulator.url + "/_emulator/text-truth/check", timeout=30)
    assert caught.value.code == 405


def test_truth_check_sums_its_chunks(emulator, known):
    pairs = [*known, (known[0][0], "wrong"), ("truth-check unknown text", "e")]
    assert truth_check(emulator.url, pairs, chunk=3) == {"checked": 7, "correct": 6, "unknown": 1}
    assert truth_check(emulator.url + "/", pairs) == {"checked": 7, "correct": 6, "unknown": 1}


def test_truth_check_of_no_pairs_is_all_zero(emulator):
    assert truth_check(emulator.url, []) == {"checked": 0, "correct": 0, "unknown": 0}


def test_truth_check_is_none_without_an_endpoint():
    assert truth_check(None, [("any text", "b")]) is None


def test_truth_check_raises_the_emulators_reason(emulator):
    with pytest.raises(RuntimeError, match=r"refused the truth check \(400\).*must be \(str, str\)"):
        truth_check(emulator.url, [("a text", None)])


def test_truth_check_is_none_where_the_route_is_unknown():
    """An endpoint that answers 404 (another emulator, a proxy) has no truth to give."""
    seen: list[dict] = []

    class NotFound(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(dict(self.headers))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert truth_check(f"http://127.0.0.1:{server.server_address[1]}", [("a text", "b")]) is None
    finally:
        server.shutdown()
        server.server_close()
    assert seen and not any(h.lower() == "authorization" for h in seen[0])


def test_truth_check_refuses_a_non_http_endpoint():
    with pytest.raises(ValueError, match="must be http"):
        truth_check("file:///etc/passwd", [])
