"""HTTP latency of one-record predictions over real uvicorn on loopback, against in-process
prediction of the same record, sequentially and with 8 and 32 concurrent clients."""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from bench.common import ROOT, median, percentile, report, timed
from features import validate
from model import Artifact
from serving.testing import ServerProcess


def _client(
    port: int, body: bytes, count: int, path: str = "/v1/predict"
) -> tuple[list[float], int]:
    """One client: ``count`` sequential POSTs of ``body`` to ``path`` on one keep-alive
    connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"content-type": "application/json"}
    latencies, errors = [], 0
    for _ in range(count):
        started = time.perf_counter()
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            ok = False
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - started)
        errors += not ok
    connection.close()
    return latencies, errors


def _load(
    port: int, body: bytes, clients: int, per_client: int, path: str = "/v1/predict"
) -> tuple[list[float], int]:
    """``clients`` concurrent clients, each in its own process: client threads in one process
    would queue on that process's GIL and add their own waiting to the latencies."""
    with ProcessPoolExecutor(max_workers=clients) as pool:
        results = list(
            pool.map(
                _client,
                [port] * clients,
                [body] * clients,
                [per_client] * clients,
                [path] * clients,
            )
        )
    return [s for latencies, _ in results for s in latencies], sum(e for _, e in results)


def _protocol_bodies(
    artifact: Artifact, record: list[dict[str, object]]
) -> list[tuple[str, str, bytes]]:
    """The same record as MLflow's /invocations and the Open Inference Protocol's infer."""
    inputs = [
        {"name": name, "shape": [1], "datatype": "BYTES" if isinstance(value, str) else "FP64",
         "data": [value]}
        for name, value in record[0].items()
    ]  # fmt: skip
    return [
        ("/invocations", "/invocations", json.dumps({"dataframe_records": record}).encode()),
        (
            "/v2/.../infer",
            f"/v2/models/{artifact.name}/infer",
            json.dumps({"inputs": inputs}).encode(),
        ),
    ]


def run(artifact: Artifact, work: Path, *, requests: int = 400) -> None:
    """p50/p99 sequentially and at 8 and 32 clients; in-process median for comparison."""
    one = pd.read_csv(ROOT / "data" / "penguins.csv").head(1)
    record = json.loads(one[artifact.spec.feature_names].to_json(orient="records"))
    spec = artifact.spec
    in_process = median(timed(lambda: artifact.predict(validate(spec, record).valid), 200))
    valid = validate(spec, record).valid
    floor = median(timed(lambda: artifact.predict(valid), 200))
    body = json.dumps({"records": record}).encode()
    rows = [
        ("in-process validate + predict, one record", f"p50 {in_process * 1000:.3f} ms"),
        ("in-process predict (already valid)", f"p50 {floor * 1000:.3f} ms"),
    ]
    figures: dict[int | str, tuple[float, float, int]] = {}
    protocols: dict[str, float] = {}
    with ServerProcess(["--artifact", str(artifact.path)], log=work / "http.log") as server:
        _load(server.port, body, 1, 50)  # warm-up
        for clients in (1, 8, 32):
            latencies, errors = _load(server.port, body, clients, max(requests // clients, 20))
            p50, p99 = median(latencies), percentile(latencies, 0.99)
            figures[clients] = (p50, p99, errors)
            rows.append(
                (
                    f"HTTP, {clients} client(s), {len(latencies)} requests",
                    f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, errors {errors}",
                )
            )
        for name, path, other in _protocol_bodies(artifact, record):
            latencies, errors = _load(server.port, other, 1, max(requests, 20), path)
            protocols[name] = median(latencies)
            rows.append((f"HTTP {name}, 1 client", f"p50 {protocols[name] * 1000:.2f} ms"))
            figures[name] = (protocols[name], percentile(latencies, 0.99), errors)
    over = (figures[1][0] - in_process) * 1000
    transport = (figures[1][0] - floor) * 1000
    tail = figures[8][1] / figures[8][0]
    errors = sum(e for _, _, e in figures.values())
    side_by_side = ", ".join(
        f"{name} {(p50 - figures[1][0]) * 1000:+.2f} ms" for name, p50 in protocols.items()
    )
    report(
        "HTTP one-record prediction over real uvicorn on loopback",
        rows,
        f"sequential HTTP p50 - in-process artifact.predict = {over:+.2f} ms (target <= +1 ms: "
        f"{'met' if over <= 1 else 'NOT met'}; HTTP, JSON and validation cost {transport:.2f} ms "
        f"over the bare compiled prediction); p99/p50 at 8 clients {tail:.2f}x (target < 3: "
        f"{'met' if tail < 3 else 'NOT met'}); errors {errors} (target 0); one record over "
        f"the other protocols vs /v1/predict: {side_by_side}",
    )
