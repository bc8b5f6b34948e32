"""zoo-bench: a benchmark harness for predicting neural network properties from weights.

Everything a plug-in needs is importable from here (`from zoo_bench import TorchPredictor`);
plug-ins and the built-in methods import nothing else from the core. Names load lazily
(PEP 562): `import zoo_bench` loads no torch, the module that defines a name is imported on
first use, so light commands and modules (results tables, `--help`) stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # architectures and their symmetry
    "ACTIVATIONS": "zoo_bench.arch",
    "ALL_LAYER_KINDS": "zoo_bench.arch",
    "INR_KINDS": "zoo_bench.arch",
    "LAYER_KINDS": "zoo_bench.arch",
    "TRANSFORMER_KINDS": "zoo_bench.arch",
    "Architecture": "zoo_bench.arch",
    "LayerSpec": "zoo_bench.arch",
    "functional_forward": "zoo_bench.arch",
    "ODD_ACTIVATIONS": "zoo_bench.symmetry",
    "Symmetry": "zoo_bench.symmetry",
    "TensorSymmetry": "zoo_bench.symmetry",
    "UnitGroup": "zoo_bench.symmetry",
    # named architectures
    "cnn_s": "zoo_bench.families",
    "cnn_small": "zoo_bench.families",
    "ctc": "zoo_bench.families",
    "ctc_widths": "zoo_bench.families",
    "mixed": "zoo_bench.families",
    "siren": "zoo_bench.families",
    "vit": "zoo_bench.families",
    # zoos
    "Zoo": "zoo_bench.store",
    "ZooWriter": "zoo_bench.store",
    # errors
    "ZooBenchError": "zoo_bench.errors",
    "ZooFormatError": "zoo_bench.errors",
    "RegistryError": "zoo_bench.errors",
    # the predictor contract and its registry
    "Budget": "zoo_bench.predictor",
    "FitContext": "zoo_bench.predictor",
    "Predictor": "zoo_bench.predictor",
    "PredictorError": "zoo_bench.predictor",
    "available_predictors": "zoo_bench.predictor",
    "describe_predictors": "zoo_bench.predictor",
    "get_predictor": "zoo_bench.predictor",
    "register_predictor": "zoo_bench.predictor",
    # hyperparameter bounds and search spaces, declared as data
    "Bound": "zoo_bench.space",
    "Choice": "zoo_bench.space",
    "Float": "zoo_bench.space",
    "Int": "zoo_bench.space",
    # shared torch training machinery
    "Batch": "zoo_bench.training",
    "Standardizer": "zoo_bench.training",
    "TorchPredictor": "zoo_bench.training",
    "TrainConfig": "zoo_bench.training",
    "TrainResult": "zoo_bench.training",
    "adamw": "zoo_bench.training",
    "epoch_steps": "zoo_bench.training",
    "minibatches": "zoo_bench.training",
    "predict_model": "zoo_bench.training",
    "resolve_device": "zoo_bench.training",
    "seed_everything": "zoo_bench.training",
    "train_model": "zoo_bench.training",
    "usable_positions": "zoo_bench.training",
    # per-layer weight statistics (StatNN's features, shared by methods)
    "layer_slot": "zoo_bench.features",
    "network_statistics": "zoo_bench.features",
    "statnn_dim": "zoo_bench.features",
    "statnn_features": "zoo_bench.features",
    "statnn_kinds": "zoo_bench.features",
    "tensor_stats": "zoo_bench.features",
    # scoring
    "Evaluator": "zoo_bench.evaluator",
    "kendall_tau": "zoo_bench.evaluator",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Import the defining module of a public name on first use (PEP 562) and cache the name."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

