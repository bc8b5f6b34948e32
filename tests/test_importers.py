"""Importers: published zoo folders in, canonical zoos out that run exactly like the originals."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES
from torch import nn

from zoo_bench import Zoo
from zoo_bench.errors import ZooImportError
from zoo_bench.importers import ctc as ctc_importer
from zoo_bench.importers import import_ctc, import_schurholt

NETWORK_SHA256 = "f733da6d8b6e8177b7ff2fe46159e05e32b5c7bbb7c94e829ee7f6859d911e46"


def ctc_data() -> Path:
    """The real CIFAR-10-GS network and layout.csv: tests/data first, ../shared as fallback."""
    here = Path(__file__).parent / "data" / "ctc"
    return here if (here / "layout.csv").is_file() else FIXTURES / "ctc"


@pytest.fixture(scope="module")
def real_network() -> np.ndarray:
    path = ctc_data() / "cifar10_gs_network.npy"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == NETWORK_SHA256
    return np.load(path)


def tf_layout() -> dict[str, tuple[int, int, tuple[int, ...]]]:
    with open(ctc_data() / "layout.csv", newline="") as f:
        return {
            r["varname"]: (int(r["start_idx"]), int(r["end_idx"]), ast.literal_eval(r["shape"]))
            for r in csv.DictReader(f)
        }


def keras_forward(vec: np.ndarray, x: np.ndarray, activation: str) -> np.ndarray:
    """The Small CNN Zoo's Keras net on NHWC input, from its raw TF-layout vector (float64).

    3 x Conv2D(16, 3x3, stride 2, padding valid, activation), GlobalAveragePooling2D, Dense(10).
    """
    p = {k: vec[s:e].astype(np.float64).reshape(shape) for k, (s, e, shape) in tf_layout().items()}
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[activation]
    h = x.astype(np.float64)
    for name in ("conv2d", "conv2d_1", "conv2d_2"):
        kernel, bias = p[f"sequential/{name}/kernel:0"], p[f"sequential/{name}/bias:0"]
        kh, kw = kernel.shape[:2]
        ho, wo = (h.shape[1] - kh) // 2 + 1, (h.shape[2] - kw) // 2 + 1
        out = np.zeros((h.shape[0], ho, wo, kernel.shape[3]))
        for i in range(kh):
            for j in range(kw):
                out += h[:, i : i + 2 * ho - 1 : 2, j : j + 2 * wo - 1 : 2, :] @ kernel[i, j]
        h = act(out + bias)
    return h.mean(axis=(1, 2)) @ p["sequential/dense/kernel:0"] + p["sequential/dense/bias:0"]


def write_ctc_source(folder: Path, weights: np.ndarray, activations: list[str],
                     dataset: str = "cifar10", metric_rows: int | None = None) -> Path:
    """A Small CNN Zoo folder as published: weights.npy, metrics.csv.gz, layout.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "weights.npy", weights.astype(np.float32))
    shutil.copy(ctc_data() / "layout.csv", folder / "layout.csv")
    n = len(weights) if metric_rows is None else metric_rows
    steps = [0, 1, 2, 3, 20, 40, 60, 80, 86]
    metrics = pd.DataFrame({
        "config.activation": [activations[i % len(activations)] for i in range(n)],
        "config.b_init": "zeros",
        "config.dataset": dataset,
        "config.dnn_architecture": "cnn",
        "config.dropout": 0.05,
        "config.epochs": 86,
        "config.init_std": np.linspace(0.01, 0.5, n),
        "config.l2reg": np.linspace(1e-8, 1e-2, n),
        "config.learning_rate": np.linspace(5e-4, 5e-2, n),
        "config.num_layers": 3,
        "config.num_units": 16,
        "config.optimizer": ["adam", "sgd", "rmsprop"] * (n // 3) + ["adam"] * (n % 3),
        "config.random_seed": np.arange(n) + 100,
        "config.train_fraction": 0.5,
        "config.w_init": "he_normal",
        "modeldir": [f"cifar10/run{i // 2}" for i in range(n)],
        "step": [steps[i % len(steps)] for i in range(n)],
        "test_accuracy": np.linspace(0.1, 0.5, n),
        "test_loss": np.linspace(2.3, 1.4, n),
        "train_accuracy": np.linspace(0.1, 0.6, n),
        "train_loss": np.linspace(2.3, 1.2, n),
    })
    metrics.to_csv(folder / "metrics.csv.gz", index=False)
    return folder


def test_ctc_module_reproduces_the_keras_network(tmp_path, real_network):
    src = write_ctc_source(tmp_path / "src", np.stack([real_network, real_network]),
                           ["relu", "tanh"])
    zoo = Zoo.open(import_ctc(src, tmp_path / "cifar10", progress=False), verify=True)
    assert zoo.architectures["ctc"].input_shape == (1, 32, 32)
    x = np.random.default_rng(0).uniform(-1, 1, size=(8, 32, 32, 1)).astype(np.float32)
    for i, activation in enumerate(["relu", "tanh"]):
        assert zoo.table["hp_activation"].iat[i] == activation
        with torch.no_grad():
            ours = zoo.module(i)(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
        np.testing.assert_allclose(ours, keras_forward(real_network, x, activation),
                                   rtol=1e-4, atol=1e-5)


def test_ctc_import_streams_every_checkpoint_into_typed_columns(tmp_path, real_network,
                                                                monkeypatch):
    monkeypatch.setattr(ctc_importer, "CHUNK_ROWS", 2)  # 7 rows in 4 chunks
    weights = real_network[None, :] * np.linspace(0.5, 1.5, 7)[:, None]
    weights[3, 10] = np.nan
    src = write_ctc_source(tmp_path / "src", weights, ["relu", "tanh"])
    zoo = Zoo.open(import_ctc(src, tmp_path / "z", name="ctc-cifar10", progress=False))
    t = zoo.table
    assert zoo.name == "ctc-cifar10" and len(zoo) == 7 and zoo.datasets == ["cifar10"]
    assert t["run_id"].tolist() == [f"cifar10/run{i // 2}" for i in range(7)]
    assert t["epoch"].tolist() == [0, 1, 2, 3, 20, 40, 60]
    assert t["nonfinite"].tolist() == [False, False, False, True, False, False, False]
    assert t["hp_learning_rate"].dtype == np.float64 and t["hp_random_seed"].dtype == np.int64
    assert t["hp_optimizer"].tolist()[:3] == ["adam", "sgd", "rmsprop"]
    assert {"hp_w_init", "hp_b_init", "hp_train_fraction", "hp_num_units"} <= set(t.columns)
    np.testing.assert_allclose(t["generalization_gap"], t["train_accuracy"] - t["test_accuracy"])
    assert zoo.manifest["source"]["kind"] == "ctc"
    first = zoo.params([0])
    layout = tf_layout()
    s, e, shape = layout["sequential/conv2d/kernel:0"]
    tf_kernel = weights[0, s:e].reshape(shape)
    np.testing.assert_array_equal(first[0][0][0].numpy(), tf_kernel.transpose(3, 2, 0, 1))
    s, e, shape = layout["sequential/dense/kernel:0"]
    np.testing.assert_array_equal(first[3][0][0].numpy(), weights[0, s:e].reshape(shape).T)


def test_ctc_import_is_deterministic(tmp_path, real_network):
    src = write_ctc_source(tmp_path / "src", np.stack([real_network] * 3), ["relu"])
    a = Zoo.open(import_ctc(src, tmp_path / "a" / "z", progress=False))
    b = Zoo.open(import_ctc(src, tmp_path / "b" / "z", progress=False))
    assert a.manifest_sha256 == b.manifest_sha256


def test_ctc_mnist_networks_take_28x28_inputs(tmp_path, real_network):
    src = write_ctc_source(tmp_path / "src", real_network[None], ["relu"], dataset="mnist")
    zoo = Zoo.open(import_ctc(src, tmp_path / "z", progress=False))
    assert zoo.architectures["ctc"].input_shape == (1, 28, 28)
    assert zoo.module(0)(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("missing", ["weights.npy", "metrics.csv.gz", "layout.csv"])
def test_ctc_missing_file_is_named(tmp_path, real_network, missing):
    src = write_ctc_source(tmp_path / "src", real_network[None], ["relu"])
    (src / missing).unlink()
    with pytest.raises(ZooImportError, match=missing.replace(".", r"\.")):
        import_ctc(src, tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("metric_rows, says", [(2, "more rows"), (4, "has 4 rows but")])
def test_ctc_row_count_mismatch_fails_and_leaves_nothing(tmp_path, real_network, metric_rows,
                                                         says, monkeypatch):
    monkeypatch.setattr(ctc_importer, "CHUNK_ROWS", 2)
    weights = np.stack([real_network] * (metric_rows + (-1 if metric_rows == 2 else 1)))
    src = write_ctc_source(tmp_path / "src", weights, ["relu"], metric_rows=metric_rows)
    with pytest.raises(ZooImportError, match=says):
        import_ctc(src, tmp_path / "z", progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_ctc_layout_disagreeing_with_the_architecture_is_refused(tmp_path, real_network):
    src = write_ctc_source(tmp_path / "src", real_network[None], ["relu"])
    text = (src / "layout.csv").read_text().replace('"(16, 10)"', '"(10, 16)"')
    (src / "layout.csv").write_text(text)
    with pytest.raises(ZooImportError, match=r"dense.*needs a linear with \(10, 16\)"):
        import_ctc(src, tmp_path / "z", progress=False)


def test_ctc_unknown_dataset_and_existing_output(tmp_path, real_network):
    src = write_ctc_source(tmp_path / "src", real_network[None], ["relu"], dataset="imagenet")
    with pytest.raises(ZooImportError, match="unknown dataset 'imagenet'"):
        import_ctc(src, tmp_path / "z", progress=False)
    src = write_ctc_source(tmp_path / "src2", real_network[None], ["relu"])
    (tmp_path / "z").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"):
        import_ctc(src, tmp_path / "z", progress=False)
    assert len(Zoo.open(import_ctc(src, tmp_path / "z", overwrite=True, progress=False))) == 1


# --- Schürholt et al. Model Zoos ---------------------------------------------------------------
ACT = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


class SchurholtCNN(nn.Module):
    """CNN-s as their code builds it: conv, max-pool, nonlinearity (+ dropout), in module_list."""

    def __init__(self, nlin: str, dropout: float = 0.0):
        super().__init__()
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.module_list = nn.ModuleList([
            nn.Conv2d(1, 8, 5), nn.MaxPool2d(2, 2), ACT[nlin](), *drop,
            nn.Conv2d(8, 6, 5), nn.MaxPool2d(2, 2), ACT[nlin](), *drop,
            nn.Conv2d(6, 4, 2), ACT[nlin](), nn.Flatten(),
            nn.Linear(36, 20), ACT[nlin](), *drop,
            nn.Linear(20, 10),
        ])

    def forward(self, x):
        for layer in self.module_list:
            x = layer(x)
        return x


MODELS = [  # (folder, nlin, dropout, checkpoint folder names)
    ("NN_tune_trainable_00000_seed=1", "Tanh", 0.0, [f"checkpoint_{e}" for e in range(3)]),
    ("NN_tune_trainable_00001_seed=2", "relu", 0.0, ["checkpoint_000000", "checkpoint_000005"]),
    ("NN_tune_trainable_00002_seed=3", "gelu", 0.5, ["checkpoint_000003"]),
]


def write_schurholt_source(root: Path) -> dict[tuple[str, int], SchurholtCNN]:
    """A Model Zoos folder in their layout; returns the torch model behind each checkpoint."""
    nets = {}
    for k, (folder, nlin, dropout, checkpoints) in enumerate(MODELS):
        model_dir = root / folder
        model_dir.mkdir(parents=True)
        config = {"model::type": "CNN", "model::nlin": nlin, "model::dropout": dropout,
                  "model::init_type": "kaiming_uniform", "optim::optimizer": "adam",
                  "optim::lr": 1e-3 * (k + 1), "optim::wd": 0.0, "seed": k + 1,
                  "training::epochs_train": 5, "dataset::dump": "/zoos/MNIST/tune_zoo/dataset.pt"}
        with open(model_dir / "result.json", "w") as f:
            for it in range(6):
                f.write(json.dumps({"test_acc": 0.1 + 0.1 * it + 0.01 * k,
                                    "test_loss": 2.0 - it / 10,
                                    "train_acc": -999 if it == 0 else 0.15 + 0.1 * it,
                                    "train_loss": -999 if it == 0 else 2.1 - it / 10,
                                    "training_iteration": it, "config": config}) + "\n")
        for name in checkpoints:
            epoch = int(name.split("_")[1])
            torch.manual_seed(10 * k + epoch)
            net = SchurholtCNN(nlin.lower(), dropout).eval()
            (model_dir / name).mkdir()
            torch.save(net.state_dict(), model_dir / name / "checkpoints")
            nets[(folder, epoch)] = net
    (root / "dataset.pt").write_bytes(b"not a model")  # zoo-level files sit next to the models
    return nets


def test_schurholt_module_equals_their_cnn(tmp_path):
    nets = write_schurholt_source(tmp_path / "src")
    zoo = Zoo.open(import_schurholt(tmp_path / "src", tmp_path / "z", progress=False),
                   verify=True)
    assert len(zoo) == 6 and zoo.datasets == ["mnist"] and list(zoo.architectures) == ["cnn_s"]
    x = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for i, row in zoo.table.iterrows():
        with torch.no_grad():
            torch.testing.assert_close(zoo.module(i)(x), nets[(row.run_id, row.epoch)](x),
                                       rtol=1e-5, atol=1e-6)
    assert zoo.table["hp_activation"].tolist() == ["tanh"] * 3 + ["relu"] * 2 + ["gelu"]


def test_schurholt_rows_carry_results_and_config(tmp_path):
    write_schurholt_source(tmp_path / "src")
    t = Zoo.open(import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)).table
    assert t["epoch"].tolist() == [0, 1, 2, 0, 5, 3]
    assert t["run_id"].tolist()[3] == "NN_tune_trainable_00001_seed=2"
    np.testing.assert_allclose(t["test_accuracy"], [0.1, 0.2, 0.3, 0.11, 0.61, 0.42])
    assert np.isnan(t["train_accuracy"].iat[0])
    assert t["train_accuracy"].iat[4] == pytest.approx(0.65)
    assert t["hp_optim_lr"].dtype == np.float64 and t["hp_seed"].dtype == np.int64
    assert t["hp_optim_optimizer"].iat[0] == "adam" and "hp_model_nlin" not in t.columns


class Exploit:
    """Unpickling this would create `marker`: what a hostile checkpoint might do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_schurholt_refuses_a_checkpoint_that_runs_code(tmp_path):
    write_schurholt_source(tmp_path / "src")
    marker = tmp_path / "pwned"
    target = tmp_path / "src" / MODELS[1][0] / "checkpoint_000005" / "checkpoints"
    torch.save({"module_list.0.weight": Exploit(marker)}, target)
    with pytest.raises(ZooImportError, match="refused to load.*never runs code"):
        import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)
    assert not marker.exists()
    assert not (tmp_path / "z").exists()


def test_schurholt_bad_sources_give_clear_errors(tmp_path):
    write_schurholt_source(tmp_path / "src")
    model = tmp_path / "src" / MODELS[0][0]
    ckpt = model / "checkpoint_1" / "checkpoints"
    ckpt.write_bytes(b"\x00garbage")
    with pytest.raises(ZooImportError, match="not a readable PyTorch checkpoint"):
        import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)
    torch.save(nn.Sequential(nn.Conv2d(1, 16, 5)).state_dict(), ckpt)
    with pytest.raises(ZooImportError, match="holds 1 weight tensors"):
        import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)
    state = SchurholtCNN("tanh").state_dict()
    state["module_list.9.weight"] = torch.zeros(20, 40)
    torch.save(state, ckpt)
    with pytest.raises(ZooImportError, match=r"module_list\.9\.weight has shape \(20, 40\)"):
        import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)
    (model / "result.json").unlink()
    with pytest.raises(ZooImportError, match="checkpoints but no result.json"):
        import_schurholt(tmp_path / "src", tmp_path / "z", progress=False)
    with pytest.raises(ZooImportError, match="holds no model"):
        import_schurholt(tmp_path / "src" / MODELS[1][0], tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()
