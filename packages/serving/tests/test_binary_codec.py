"""The Open Inference Protocol's binary tensor extension, as properties. The requests are built
here with `struct` (an encoder independent of the service's decoder), from the species model's
feature spec: random row counts, each input sent as binary or as JSON data, nulls (where a
feature allows them) as BYTES "". A valid binary request gets exactly the answer of the same
request in JSON; a binary body cut or extended anywhere, or framed by a wrong
Inference-Header-Content-Length or binary_data_size, is a 400 in the protocol's error shape:
never a 500, never an answer."""

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from features import FeatureSpec
from model import Artifact

HEADER = "inference-header-content-length"
PACKED = {"FP64": "<d", "FP32": "<f", "INT64": "<q", "INT32": "<i"}
"""The little-endian `struct` format of one element of each numeric tensor type sent here."""
UNKNOWN_ISLANDS = ["Anvers", "Île Petermann"]  # an open category: new sites (UTF-8) accepted

Framed = tuple[bytes, int | str]
"""A binary request's body and the Inference-Header-Content-Length it is sent with."""

# Each test runs its property in one service (no state of it changes an answer). The fixtures
# stay out of the property's arguments: a failing example's repr of the artifact (~90 kB) makes
# Hypothesis warn, which the warnings-as-errors setting turns into a FlakyStrategyDefinition
# that hides the example.
PROPERTY = settings(max_examples=100, deadline=None)  # no deadline: the machine is shared


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    cells: list[Any]
    binary: bool

    def raw(self) -> bytes:
        """The tensor's binary data: BYTES as 4-byte little-endian lengths, each followed by
        the UTF-8 text; numbers as packed little-endian elements, row after row."""
        if self.datatype == "BYTES":
            encoded = [cell.encode() for cell in self.cells]
            return b"".join(struct.pack("<I", len(text)) + text for text in encoded)
        return b"".join(struct.pack(PACKED[self.datatype], cell) for cell in self.cells)

    def starts(self) -> list[int]:
        """Where each element begins in :meth:`raw`."""
        if self.datatype == "BYTES":
            sizes = [4 + len(cell.encode()) for cell in self.cells]
        else:
            sizes = [struct.calcsize(PACKED[self.datatype])] * len(self.cells)
        return [sum(sizes[:i]) for i in range(len(sizes))]


@dataclass(frozen=True)
class Infer:
    """An infer request: its inputs, and optionally the outputs it asks for and an id."""

    tensors: list[Tensor]
    outputs: list[str] | None
    request_id: str | None

    def header(self, sizes: dict[int, Any] | None = None) -> dict[str, Any]:
        """The JSON part: a binary input announces its binary_data_size (from ``sizes`` when
        given, else its true size), a JSON input holds its data (rows of one for [n, 1])."""
        inputs = []
        for index, tensor in enumerate(self.tensors):
            entry: dict[str, Any] = {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": tensor.shape,
            }
            if tensor.binary:
                size = (sizes or {}).get(index, len(tensor.raw()))
                entry["parameters"] = {"binary_data_size": size}
            else:
                two_d = len(tensor.shape) == 2
                entry["data"] = [[cell] for cell in tensor.cells] if two_d else tensor.cells
            inputs.append(entry)
        header: dict[str, Any] = {"inputs": inputs}
        if self.outputs is not None:
            header["outputs"] = [{"name": name} for name in self.outputs]
        if self.request_id is not None:
            header["id"] = self.request_id
        return header

    def body(
        self, sizes: dict[int, Any] | None = None, raws: dict[int, bytes] | None = None
    ) -> tuple[bytes, int]:
        """The binary request (JSON header, then each binary input's data in input order) and
        its header's length; ``raws`` replaces inputs' data, ``sizes`` their announced sizes."""
        header = json.dumps(self.header(sizes)).encode()
        blobs = [
            (raws or {}).get(index, tensor.raw())
            for index, tensor in enumerate(self.tensors)
            if tensor.binary
        ]
        return header + b"".join(blobs), len(header)

    def as_json(self) -> bytes:
        """The same request with every input's data in the JSON."""
        every = [Tensor(t.name, t.datatype, t.shape, t.cells, binary=False) for t in self.tensors]
        return json.dumps(Infer(every, self.outputs, self.request_id).header()).encode()

    def binary_indexes(self) -> list[int]:
        return [index for index, tensor in enumerate(self.tensors) if tensor.binary]


def number(value: float | None) -> str:
    """A number (or null) as the contract's text: a plain number, or "" for null."""
    return "" if value is None else repr(value)


@st.composite
def columns(draw: st.DrawFn, spec: FeatureSpec, name: str, n_rows: int) -> tuple[str, list[Any]]:
    """A valid column of ``n_rows`` cells, and the datatype it is sent as."""
    column = next(c for c in spec.features if c.name == name)
    nullable = column.nullable and draw(st.booleans())
    if column.kind != "numeric":
        assert column.kind == "categorical"
        options = list(column.categories)
        if column.allow_unknown:
            options += UNKNOWN_ISLANDS
        text = st.sampled_from(options)
        if nullable:
            text = text | st.just("")
        return "BYTES", draw(st.lists(text, min_size=n_rows, max_size=n_rows))
    low, high = column.min, column.max
    assert low is not None
    assert high is not None
    datatype = "BYTES" if nullable else draw(st.sampled_from(["FP64", "FP32", "INT64", "INT32"]))
    values: st.SearchStrategy[Any]
    if datatype.startswith("INT"):
        values = st.integers(math.ceil(low), math.floor(high))
    else:
        values = st.floats(low, high, width=32 if datatype == "FP32" else 64)
    if datatype == "BYTES":
        values = st.builds(number, st.none() | values)
    return datatype, draw(st.lists(values, min_size=n_rows, max_size=n_rows))


@st.composite
def requests(draw: st.DrawFn, spec: FeatureSpec, *, binary: bool = False) -> Infer:
    """A valid infer request: 1 to 12 rows, the inputs in any order, each binary or JSON (at
    least one binary when ``binary``), of shape [n] or [n, 1]."""
    n_rows = draw(st.integers(1, 12))
    names = draw(st.permutations(spec.feature_names))
    tensors = []
    for name in names:
        datatype, cells = draw(columns(spec, name, n_rows))
        shape = draw(st.sampled_from([[n_rows], [n_rows, 1]]))
        tensors.append(Tensor(name, datatype, shape, cells, binary=draw(st.booleans())))
    if binary and not any(t.binary for t in tensors):
        index = draw(st.integers(0, len(tensors) - 1))
        first = tensors[index]
        tensors[index] = Tensor(first.name, first.datatype, first.shape, first.cells, binary=True)
    outputs = draw(
        st.none() | st.lists(st.sampled_from(["predict", "predict_proba"]), max_size=2, unique=True)
    )
    return Infer(tensors, outputs, draw(st.none() | st.text(max_size=6)))


Answer = tuple[int, str, Any]
"""An answer's status, content type and body (its JSON, else its text)."""


def post(client: TestClient, artifact: Artifact, body: bytes, headers: dict[str, str]) -> Answer:
    answer = client.post(f"/v2/models/{artifact.name}/infer", content=body, headers=headers)
    kind = answer.headers["content-type"]
    return answer.status_code, kind, answer.json() if kind == "application/json" else answer.text


def infer(client: TestClient, artifact: Artifact, body: bytes, header_length: int | str) -> Answer:
    """The binary request's answer."""
    headers = {"content-type": "application/octet-stream", HEADER: str(header_length)}
    return post(client, artifact, body, headers)


def assert_refused(answer: Answer) -> None:
    """A 400 in the protocol's error shape: ``{"error": message}``, as JSON."""
    status, kind, error = answer
    assert (status, kind) == (400, "application/json"), answer
    assert isinstance(error, dict)
    assert list(error) == ["error"], error
    assert isinstance(error["error"], str)
    assert error["error"]


def test_a_binary_request_gets_the_answer_of_its_json_form(
    client: TestClient, artifact: Artifact
) -> None:
    @given(data=st.data())  # drawn inside: a failing example then shows the request
    @PROPERTY
    def check(data: st.DataObject) -> None:
        request = data.draw(requests(artifact.spec))
        body, header_length = request.body()
        binary = infer(client, artifact, body, header_length)
        plain = post(client, artifact, request.as_json(), {"content-type": "application/json"})
        assert plain[0] == 200, plain
        assert binary == plain

    check()


@st.composite
def cut_bodies(draw: st.DrawFn, request: Infer) -> Framed:
    """The body cut anywhere (even inside its JSON header), the header length unchanged."""
    body, header_length = request.body()
    return body[: draw(st.integers(0, len(body) - 1))], header_length


@st.composite
def extended_bodies(draw: st.DrawFn, request: Infer) -> Framed:
    """Bytes after the last tensor."""
    body, header_length = request.body()
    return body + draw(st.binary(min_size=1, max_size=16)), header_length


@st.composite
def wrong_header_lengths(draw: st.DrawFn, request: Infer) -> Framed:
    """An Inference-Header-Content-Length that is not the JSON header's length."""
    body, header_length = request.body()
    wrong = st.integers(-2, len(body) + 8).filter(lambda n: n != header_length)
    return body, draw(wrong | st.sampled_from(["", "ten", "1.5", f"{header_length}x"]))


@st.composite
def wrong_sizes(draw: st.DrawFn, request: Infer) -> Framed:
    """One binary input announcing a binary_data_size that is not its data's size."""
    index = draw(st.sampled_from(request.binary_indexes()))
    size = len(request.tensors[index].raw())
    wrong = (
        st.integers(0, size + 16).filter(lambda n: n != size)
        | st.integers(max_value=-1)
        | st.sampled_from([None, str(size), float(size), [size], {"size": size}])
    )
    return request.body(sizes={index: draw(wrong)})


@st.composite
def cut_data(draw: st.DrawFn, request: Infer) -> Framed:
    """One binary input's data cut, its binary_data_size (and the header length) telling the
    truth about the cut: anywhere, inside an element's length or text, just short of the end
    (a 7-byte FP64, a 3-byte length), or a BYTES input's last text one byte short (which the
    contract would accept: "Dream" as "Drea", "45.25" as "45.2"). Each is a truncated
    element or an element too few."""
    where = draw(st.sampled_from(["anywhere", "inside an element", "near the end", "text"]))
    tensors = request.tensors
    texts = [i for i in request.binary_indexes() if tensors[i].datatype == "BYTES"]
    texts = [i for i in texts if tensors[i].cells[-1]]  # a text, not null ("")
    if where == "text" and not texts:
        where = "near the end"
    index = draw(st.sampled_from(texts if where == "text" else request.binary_indexes()))
    tensor = tensors[index]
    raw = tensor.raw()
    if where == "anywhere":
        cut = draw(st.integers(0, len(raw) - 1))
    elif where == "inside an element":
        cut = min(draw(st.sampled_from(tensor.starts())) + draw(st.integers(1, 5)), len(raw) - 1)
    elif where == "near the end":
        cut = len(raw) - draw(st.integers(1, min(len(raw), 4)))
    else:
        cut = len(raw) - 1
    return request.body(sizes={index: cut}, raws={index: raw[:cut]})


@st.composite
def extended_data(draw: st.DrawFn, request: Infer) -> Framed:
    """One binary input's data extended by a few bytes (a part of a length, a BYTES element
    or a number too many), its binary_data_size (and the header length) telling the truth."""
    index = draw(st.sampled_from(request.binary_indexes()))
    raw = request.tensors[index].raw() + draw(
        st.binary(min_size=1, max_size=3) | st.binary(min_size=1, max_size=12)
    )
    return request.body(sizes={index: len(raw)}, raws={index: raw})


Corruption = Callable[[Infer], st.SearchStrategy[Framed]]


@pytest.mark.parametrize(
    "corrupt",
    [cut_bodies, extended_bodies, wrong_header_lengths, wrong_sizes, cut_data, extended_data],
)
def test_a_wrongly_framed_binary_request_is_a_400(
    client: TestClient, artifact: Artifact, corrupt: Corruption
) -> None:
    @given(data=st.data())
    @PROPERTY
    def check(data: st.DataObject) -> None:
        request = data.draw(requests(artifact.spec, binary=True))
        body, header_length = data.draw(corrupt(request))
        assert_refused(infer(client, artifact, body, header_length))

    check()
