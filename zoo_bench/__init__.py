"""zoo-bench: a benchmark harness for predicting neural network properties from weights."""

from zoo_bench.arch import Architecture, LayerSpec
from zoo_bench.evaluator import Evaluator
from zoo_bench.features import network_statistics, statnn_dim, statnn_features
from zoo_bench.predictor import (
    Budget,
    FitContext,
    Predictor,
    available_predictors,
    get_predictor,
    register_predictor,
)
from zoo_bench.store import Zoo, ZooWriter

__version__ = "0.1.0"
__all__ = [
    "Architecture", "Budget", "Evaluator", "FitContext", "LayerSpec", "Predictor", "Zoo",
    "ZooWriter", "__version__", "available_predictors", "get_predictor", "network_statistics",
    "register_predictor", "statnn_dim", "statnn_features",
]
