"""A real Open Inference Protocol client that no one here wrote, tritonclient's HTTP
`InferenceServerClient`, against the real service under uvicorn: health, metadata and infer,
with JSON tensors and with its default binary tensors; the answers are /v1/predict's."""

import json
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from model import TrainConfig, save_result, train
from serving.testing import ServerProcess

from .conftest import ROOT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("oip")
    result = train(TrainConfig.from_toml(ROOT / "configs" / "penguins_species.toml"))
    artifact = save_result(result, folder / "artifact")
    with ServerProcess(["--artifact", str(artifact)], log=folder / "server.log") as process:
        yield process


def tensor(name: str, values: list, datatype: str, binary: bool) -> triton.InferInput:
    typed = np.array(values, dtype=object if datatype == "BYTES" else np.float64)
    tensor = triton.InferInput(name, [len(values)], datatype)
    tensor.set_data_from_numpy(typed, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_client_health_metadata_and_infer(server: ServerProcess, binary: bool) -> None:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("penguins-species")
        metadata = client.get_model_metadata("penguins-species")
        inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        assert inputs["island"] == "BYTES"
        assert inputs["body_mass_g"] == "FP64"
        frame = pd.read_csv(ROOT / "data" / "penguins.csv").head(20)[list(inputs)]
        # No null in the protocol: the columns with missing values go as BYTES, "" for missing.
        tensors = []
        for name, datatype in inputs.items():
            column = frame[name]
            if column.isna().any() or datatype == "BYTES":
                cells = ["" if pd.isna(v) else str(v) for v in column]
                tensors.append(tensor(name, cells, "BYTES", binary))
            else:
                tensors.append(tensor(name, column.tolist(), datatype, binary))
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=binary),
            triton.InferRequestedOutput("predict_proba", binary_data=binary),
        ]
        result = client.infer("penguins-species", tensors, outputs=outputs)
        labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
        proba = result.as_numpy("predict_proba")

        records = json.loads(frame.to_json(orient="records"))
        status, answer = server.request("/v1/predict", {"records": records})
        assert status == 200
        expected = answer["predictions"]
        assert labels == [p["prediction"] for p in expected]
        assert proba.shape == (20, 3)
        classes = ["Adelie", "Chinstrap", "Gentoo"]
        np.testing.assert_array_equal(
            proba, [[p["probabilities"][c] for c in classes] for p in expected]
        )
        with pytest.raises(InferenceServerException, match="unknown model"):
            client.get_model_metadata("no-such-model")
    finally:
        client.close()


def test_protocol_routes_are_counted_by_their_template(server: ServerProcess) -> None:
    """/metrics labels every model path by its route template, never by the name sent."""
    server.request("/v2/models/penguins-species/ready")
    server.request("/v2/models/other/ready")
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert 'route="/v2/models/{name}/ready",status="200"' in metrics
    assert 'route="/v2/models/{name}/ready",status="404"' in metrics
    assert "penguins-species/ready" not in metrics
    assert Path(server.log).read_text().count('"route": "/v2/models/{name}/ready"') >= 2
