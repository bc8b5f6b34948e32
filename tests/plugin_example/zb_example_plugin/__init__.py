"""An example zoo-bench plug-in: ranks networks by a weighted sum of per-layer weight norms.

It imports nothing but top-level `zoo_bench` names, as an outside package should.
"""

from __future__ import annotations

import numpy as np

from zoo_bench import FitContext, Predictor, Zoo


class LayerNormRanker(Predictor):
    """Least squares of the target on each layer's log weight norm (of the given `order`)."""

    version = "1"  # bump when the behaviour changes: stored cells of older versions are redone
    defaults = {"order": 2, "ridge": 1e-3}
    supports_note = "any architecture with the training zoo's number of layers"

    def fit(self, train: Zoo, val: Zoo, target: str, ctx: FitContext) -> None:
        x = self._features(train)  # (N, L + 1)
        y = train.targets(target)  # (N,)
        keep = np.isfinite(y) & np.isfinite(x).all(1)
        x, y = x[keep], y[keep]
        ridge = self.hparams()["ridge"] * np.eye(x.shape[1])
        self.coef = np.linalg.solve(x.T @ x + ridge, x.T @ y)  # (L + 1,)
        self.n_layers = x.shape[1] - 1

    def can_predict(self, arch) -> bool:
        """Once fitted, only nets with as many layers as the training nets."""
        return len(arch.layers) == self.n_layers

    def predict(self, zoo: Zoo) -> np.ndarray:
        return np.nan_to_num(self._features(zoo) @ self.coef)

    def _features(self, zoo: Zoo) -> np.ndarray:
        """(N, L + 1): a constant, then log(1 + norm) of each layer's weight tensor."""
        order = self.hparams()["order"]
        rows = []
        for i in range(len(zoo)):
            flat, start, norms = zoo.flat(i), 0, []
            for layer in zoo.architecture_of(i).layers:
                n_w, n_b = int(np.prod(layer.weight_shape)), int(np.prod(layer.bias_shape))
                norms.append(np.linalg.norm(flat[start:start + n_w], ord=order))
                start += n_w + n_b
            rows.append([1.0, *np.log1p(norms)])
        return np.asarray(rows, dtype=np.float64)
