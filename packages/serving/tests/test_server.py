"""The real thing: `serving serve` under uvicorn on a loopback port, spoken to over HTTP."""

import contextlib
import dataclasses
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from model import Artifact, RandomForest, TrainConfig, load_artifact, save_result, train
from serving.door import INLINE_BODY_BYTES
from serving.server import DRAIN_BYTES
from serving.testing import ServerProcess, wait_until

from .conftest import RECORD, ROOT, predicted, records_of


def test_ready_and_same_predictions_as_in_process(
    server: ServerProcess, artifact: Artifact, penguins: pd.DataFrame
) -> None:
    status, body = server.request("/ready")
    assert (status, body["version"]) == (200, artifact.version)
    frame = penguins.sample(25, random_state=1)
    status, body = server.request(
        "/v1/predict", {"records": records_of(frame, artifact.spec.feature_names)}
    )
    assert status == 200
    assert [p["prediction"] for p in body["predictions"]] == predicted(
        artifact, frame
    ).labels.tolist()


def test_concurrent_clients(
    server: ServerProcess, artifact: Artifact, penguins: pd.DataFrame
) -> None:
    """Many clients at once all get their own answers, in their order."""
    frames = [penguins.sample(200, random_state=seed) for seed in range(16)]
    expected = [predicted(artifact, f).labels.tolist() for f in frames]

    def predict(frame: pd.DataFrame) -> tuple[int, list[str]]:
        status, body = server.request(
            "/v1/predict", {"records": records_of(frame, artifact.spec.feature_names)}
        )
        return status, [p["prediction"] for p in body["predictions"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(predict, frames))
    assert [status for status, _ in results] == [200] * 16
    assert [predictions for _, predictions in results] == expected


HOLD = """
import pathlib
import uuid

import {module}

_original = {module}.{owner}.{method}
_gate = pathlib.Path({gate!r})


def _held(self, arg, *args, **kwargs):
    if {condition}:
        (_gate / f"started-{{uuid.uuid4().hex}}").touch()
        while not (_gate / "release").exists():  # busy, holding the GIL as model code can
            pass
    return _original(self, arg, *args, **kwargs)


{module}.{owner}.{method} = _held
"""


def holding(tmp_path: Path, target: str, condition: str) -> tuple[dict[str, str], Path]:
    """The environment of a server in which ``target`` (``module.Owner.method``) holds, busy,
    whenever ``condition`` holds of its first argument ``arg``: each such call first drops a
    ``started-*`` file in the returned gate folder, and runs once ``release`` is there."""
    module, owner, method = target.rsplit(".", 2)
    gate = tmp_path / "gate"
    hook = tmp_path / "hook"
    gate.mkdir()
    hook.mkdir()
    code = HOLD.format(
        module=module, owner=owner, method=method, gate=str(gate), condition=condition
    )
    (hook / "sitecustomize.py").write_text(code)
    return {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}, gate


def answered_while_held(
    live: ServerProcess, gate: Path, calls: list[tuple[str, Any]]
) -> list[tuple[int, Any]]:
    """Send ``calls`` at once, wait until each is held in the server, check /health answers
    while they all are, then release them; their answers. Were a call handled on the event
    loop, the loop would be held: the next call never starts, /health never answers."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        held = [pool.submit(live.request, path, body) for path, body in calls]
        try:
            wait_until(
                lambda: len(list(gate.glob("started-*"))) == len(calls),
                f"{len(calls)} calls held in the server",
            )
            assert live.request("/health") == (200, {"status": "ok"})
            assert not any(call.done() for call in held)
        finally:
            (gate / "release").touch()
        return [call.result() for call in held]


def forest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model that predicts through scikit-learn: saved without its compiled form."""
    config = TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml")
    trees = RandomForest(kind="random_forest", n_estimators=10)
    result = train(config.model_copy(update={"estimator": trees}))
    plain = dataclasses.replace(result, compiled=None)
    return save_result(plain, tmp_path_factory.mktemp("forest") / "forest")


@pytest.mark.parametrize(
    ("model", "rows"),
    [
        ("numpy", 50),  # a large body: a worker thread
        ("scikit-learn", 2),  # a small body, but not a NumPy-only model: a worker thread too
    ],
)
def test_liveness_while_slow_predictions_run(
    artifact_path: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    penguins: pd.DataFrame,
    artifact: Artifact,
    model: str,
    rows: int,
) -> None:
    """Prediction runs off the event loop: while two predictions are held busy in the server
    (a hook in the server process), /health answers. Only a small body for a NumPy-only model
    is handled on the loop (it takes ~0.1 ms)."""
    path = artifact_path if model == "numpy" else forest(tmp_path_factory)
    assert load_artifact(path).numpy_only is (model == "numpy")
    env, gate = holding(tmp_path, "model.Artifact.predict", "len(arg) > 1")  # not the self-check
    records = {"records": records_of(penguins.head(rows), artifact.spec.feature_names)}
    assert (len(json.dumps(records)) <= INLINE_BODY_BYTES) is (rows == 2)
    with ServerProcess(["--artifact", str(path)], log=tmp_path / "s.log", env=env) as live:
        answers = answered_while_held(live, gate, [("/v1/predict", records)] * 2)
    assert [status for status, _ in answers] == [200, 200]
    assert [len(body["predictions"]) for _, body in answers] == [rows, rows]


def test_json_access_log(server: ServerProcess) -> None:
    server.request("/health")
    server.stop()
    lines = [line for line in server.log.read_text().splitlines() if '"serving.access"' in line]
    assert any('"route": "/health"' in line and '"status": 200' in line for line in lines)


def test_start_up_without_an_artifact_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = subprocess.run(
        [sys.executable, "-m", "serving.cli", "serve", "--port", "1"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env={**os.environ, "SERVING_ARTIFACT": str(missing)},
    )
    assert result.returncode == 1
    assert f"error: {missing}: artifact directory not found" in result.stderr
    assert "Traceback" not in result.stderr


def _connect(server: ServerProcess, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if data:
        sock.sendall(data)
    return sock


def _open(sock: socket.socket) -> bool:
    """Whether the server has neither closed the connection nor answered on it yet."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # non-blocking: look, do not wait
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)


def _closed_by_server(sock: socket.socket) -> bytes:
    """What the server sent before closing (b"" for nothing); fails if it keeps it open."""
    sock.settimeout(60)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_stalled_connections_are_closed_while_health_answers(
    artifact_path: Path, tmp_path: Path
) -> None:
    """Silent and half-sent connections cannot hold the service: /health answers while they
    are all open, and the server closes them at its deadlines."""
    env = {"SERVING_HEADER_TIMEOUT": "10", "SERVING_BODY_TIMEOUT": "10"}
    with ServerProcess(
        ["--artifact", str(artifact_path)], log=tmp_path / "s.log", env=env
    ) as server:
        head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        with contextlib.ExitStack() as opened:
            silent = [opened.enter_context(_connect(server, b"")) for _ in range(150)]
            half_head = [opened.enter_context(_connect(server, head)) for _ in range(100)]
            half_body = [
                opened.enter_context(
                    _connect(server, head + b"content-length: 1000\r\n\r\n" + b'{"records": [')
                )
                for _ in range(50)
            ]
            for _ in range(10):
                assert server.request("/health") == (200, {"status": "ok"})
            assert all(_open(sock) for sock in silent + half_head + half_body)
            for sock in silent + half_head:
                assert _closed_by_server(sock) == b""
            for sock in half_body:
                answer = _closed_by_server(sock)
                assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
                assert b"request body not received within 10 s" in answer
        assert server.request("/health") == (200, {"status": "ok"})


def test_health_answers_while_huge_bad_bodies_are_read(artifact_path: Path, tmp_path: Path) -> None:
    """~0.9 MB bodies of 84,000 unknown fields are read and refused off the event loop (while
    two are held in the reader, /health answers), and the refusal is bounded."""
    noisy = {**RECORD, **{f"u{i}": 0 for i in range(84)}}
    body = {"records": [noisy] * 1000}
    big = f"len(arg) > {INLINE_BODY_BYTES}"
    env, gate = holding(tmp_path, "serving.schemas.RequestReader.read", big)
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "s.log", env=env) as live:
        answers = answered_while_held(live, gate, [("/v1/predict", body)] * 2)
    for status, answer in answers:
        assert (status, answer["total"], len(answer["detail"])) == (422, 84_000, 100)


def test_early_answers_close_the_connection(artifact_path: Path, tmp_path: Path) -> None:
    """A response sent before the body was read (408, 413, 415, a GET with a body) closes the
    connection: a client that keeps sending body bytes cannot keep its slot."""
    env = {"SERVING_BODY_TIMEOUT": "1"}
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "s.log", env=env) as live:
        requests = {
            408: b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\n1\r\n{\r\n",
            413: b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-length: 99999999\r\n\r\n{",
            415: b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: text/plain\r\n"
            b"content-length: 1000\r\n\r\n{",
            200: b"GET /health HTTP/1.1\r\nHost: x\r\ncontent-length: 1000\r\n\r\n{",
        }
        for status, request in requests.items():
            with _connect(live, request) as sock:
                deadline = time.monotonic() + 60  # generous: the 408 comes after 1 s
                answer = b""
                sock.settimeout(0.2)
                while time.monotonic() < deadline:  # keep feeding the body, as a hoarder would
                    with contextlib.suppress(OSError):
                        sock.sendall(b"1\r\na\r\n" if status == 408 else b"a")
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        continue
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    answer += chunk
                else:
                    pytest.fail(f"the connection stayed open after {answer[:60]!r}")
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:80]
            assert b"connection: close" in answer.lower()


def test_server_level_answers_are_counted_and_logged(artifact_path: Path, tmp_path: Path) -> None:
    """The connection cap's 503 and the 400 for an unparsable request are answered before any
    app sees them; they are counted and logged all the same."""
    env = {"SERVING_MAX_CONNECTIONS": "3"}
    log = tmp_path / "s.log"
    with ServerProcess(["--artifact", str(artifact_path)], log=log, env=env) as live:
        with contextlib.ExitStack() as opened:
            for _ in range(3):  # accepted in the order they connect: the fourth is over the cap
                opened.enter_context(_connect(live, b""))
            with _connect(live, b"") as extra:
                answer = _closed_by_server(extra)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"].startswith("service overloaded")
        with _connect(
            live, b"GET /health HTTP/1.1\r\nHost: x\r\ncontent-length: +5\r\n\r\n"
        ) as bad:
            assert _closed_by_server(bad).startswith(b"HTTP/1.1 400 ")
        status, _ = live.request("/health")
        metrics = urllib.request.urlopen(f"{live.url}/metrics", timeout=10).read().decode()
    assert status == 200
    assert 'serving_requests_total{route="(server)",status="503"} 1.0' in metrics
    assert 'serving_requests_total{route="(server)",status="400"} 1.0' in metrics
    lines = [
        json.loads(line) for line in log.read_text().splitlines() if '"serving.access"' in line
    ]
    server = [(e["status"], e["level"]) for e in lines if e["route"] == "(server)"]
    assert sorted(server) == [(400, "info"), (503, "error")]


def test_a_client_leaving_mid_body_is_not_a_server_error(
    artifact_path: Path, tmp_path: Path
) -> None:
    log = tmp_path / "s.log"
    with ServerProcess(["--artifact", str(artifact_path)], log=log) as live:
        head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        with _connect(live, head + b"content-length: 1000\r\n\r\n" + b'{"rec'):
            pass

        def metrics() -> str:
            return urllib.request.urlopen(f"{live.url}/metrics", timeout=30).read().decode()

        wait_until(lambda: 'route="/v1/predict",status="499"} 1.0' in metrics(), "a 499")
        assert 'status="500"' not in metrics()
    (entry,) = [
        json.loads(line) for line in log.read_text().splitlines() if '"/v1/predict"' in line
    ]
    assert (entry["status"], entry["level"]) == (499, "info")
    assert entry["error"] == "the client left before sending the whole request"


def test_docs_work_offline(server: ServerProcess) -> None:
    """/docs and /redoc name no asset on another host (no CDN), and every asset they name is
    served by the service itself over the loopback."""
    for page in ("/docs", "/redoc"):
        with urllib.request.urlopen(server.url + page, timeout=30) as response:
            html = response.read().decode()
        named = re.findall(r"""(?:src|href|spec-url)=["']([^"']+)["']""", html)
        named += re.findall(r"""url: *["']([^"']+)["']""", html)
        assert named, html
        assert not [u for u in named if "//" in u], named  # nothing absolute: no CDN
        for url in named:
            with urllib.request.urlopen(server.url + url, timeout=30) as asset:
                assert asset.status == 200, url
                assert asset.read(), url


def test_metrics_add_up_every_worker(artifact_path: Path, tmp_path: Path) -> None:
    """With --workers 2, every scrape of /metrics reports the service's totals, whichever
    worker answers it. Predictions are sent, each on a new connection, until both workers
    have answered some (their process ids in the access log)."""
    args = ["--artifact", str(artifact_path), "--workers", "2"]
    log = tmp_path / "workers.log"
    sent = 0

    def both_predicted() -> bool:
        nonlocal sent
        status, _ = server.request("/v1/predict", {"records": [RECORD, RECORD]})
        assert status == 200
        sent += 1
        lines = [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]
        return len({e["pid"] for e in lines if e.get("route") == "/v1/predict"}) == 2

    with ServerProcess(args, log=log) as server:
        wait_until(both_predicted, "both workers to answer a prediction", timeout=120)
        scrapes = []
        for _ in range(8):
            with urllib.request.urlopen(server.url + "/metrics", timeout=30) as response:
                text = response.read().decode()
            (value,) = re.findall(r"^serving_predictions_total (\S+)$", text, re.M)
            scrapes.append(float(value))
    assert scrapes == [2.0 * sent] * 8, (scrapes, sent)


HUGE_BODY = 26_000_000
"""26 MB: 26 times the default body limit."""


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_plain_client_reads_the_413_of_a_body_far_over_the_limit(
    server: ServerProcess, chunked: bool
) -> None:
    """http.client writes the whole body before it reads: the server answers 413 at once, then
    reads and discards the rest (a lingering close) instead of resetting the connection under
    the client (ConnectionResetError or BrokenPipeError without it)."""
    piece = b" " * 1_000_000
    body: bytes | Iterator[bytes] = (
        (piece for _ in range(HUGE_BODY // len(piece))) if chunked else piece * 26
    )
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(
            "POST",
            "/v1/predict",
            body=body,
            headers={"content-type": "application/json"},
            encode_chunked=chunked,
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413
    assert response.getheader("connection") == "close"
    assert answer["error"] == "request body larger than 1000000 bytes"
    assert server.request("/health") == (200, {"status": "ok"})


def _send_until_cut(sock: socket.socket, most: int) -> tuple[int, OSError | None]:
    """Send spaces, a megabyte at a time, until the connection fails or ``most`` are sent:
    how many were sent, and the failure."""
    sock.settimeout(60)
    sent, piece = 0, b" " * 1_000_000
    try:
        while sent < most:
            sock.sendall(piece)
            sent += len(piece)
    except OSError as error:
        return sent, error
    return sent, None


def test_what_is_drained_after_an_early_answer_is_bounded(
    artifact_path: Path, tmp_path: Path
) -> None:
    """A client that goes on sending after its 413 is cut off once DRAIN_BYTES more have
    arrived (long before its body_timeout of 10 minutes)."""
    env = {"SERVING_BODY_TIMEOUT": "600"}
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "s.log", env=env) as live:
        head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-length: 999999999999\r\n\r\n"
        with _connect(live, head) as sock:
            sent, cut = _send_until_cut(sock, 4 * DRAIN_BYTES)
        assert isinstance(cut, ConnectionResetError | BrokenPipeError), cut
        assert DRAIN_BYTES <= sent < 2 * DRAIN_BYTES
        assert live.request("/health") == (200, {"status": "ok"})


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n"
        b"content-length: 0\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/predict HTTP/1.0\r\nHost: x\r\ncontent-type: application/json\r\n"
        b"transfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["post", "get", "http/1.0"],
)
def test_a_request_with_both_content_length_and_transfer_encoding_is_refused(
    artifact_path: Path, tmp_path: Path, request_bytes: bytes
) -> None:
    """The two framings a proxy and this server could read differently (request smuggling),
    or chunks in HTTP/1.0, which has none: 400 naming them, and the connection closed;
    nothing after it is read as a request."""
    log = tmp_path / "s.log"
    with ServerProcess(["--artifact", str(artifact_path)], log=log) as live:
        with _connect(live, request_bytes) as sock:
            answer = _closed_by_server(sock)
        metrics = urllib.request.urlopen(f"{live.url}/metrics", timeout=30).read().decode()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert b"connection: close" in answer.lower()
    reason = "HTTP/1.0 request" if b"HTTP/1.0" in request_bytes else "both given"
    assert reason.encode() in answer
    assert 'serving_requests_total{route="(server)",status="400"} 1.0' in metrics
    assert "smuggled" not in log.read_text()
    assert reason in log.read_text()


def _cut_within(sock: socket.socket, seconds: float) -> OSError | None:
    """Keep sending a byte at a time, as a client still writing would, until the connection
    fails (the server closed it: reset, broken pipe) or ``seconds`` pass (None)."""
    sock.settimeout(1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"x")
        except OSError as error:
            return error
        time.sleep(0.05)
    return None


@pytest.mark.parametrize(
    "head",
    [b"\x00\x01\x02 garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n"],
    ids=["not http", "bad header"],
)
def test_a_request_head_that_cannot_be_parsed_closes_at_once(
    artifact_path: Path, tmp_path: Path, head: bytes
) -> None:
    """Lingering (reading what a client still sends after an early answer) is for a body on
    its way: a head that cannot be parsed gets its 400 and the connection closed at once, not
    held until body_timeout (120 s here, far above the 30 s allowed)."""
    env = {"SERVING_BODY_TIMEOUT": "120"}
    with ServerProcess(["--artifact", str(artifact_path)], log=tmp_path / "s.log", env=env) as live:
        with _connect(live, head) as sock:
            assert _closed_by_server(sock).startswith(b"HTTP/1.1 400 ")
            cut = _cut_within(sock, 30)
        assert isinstance(cut, ConnectionResetError | BrokenPipeError), cut
        # A body that goes wrong mid-way was on its way: that connection still lingers.
        chunked = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        with _connect(live, chunked + b"zz\r\n") as sock:
            assert _closed_by_server(sock).startswith(b"HTTP/1.1 400 ")
            assert _cut_within(sock, 3) is None
        assert live.request("/health") == (200, {"status": "ok"})
