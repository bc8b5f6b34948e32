"""Every method's predictions on two tiny CNN zoos, for the bit-identical check of the CNN path.

Run as a script (`python tests/cnn_reference.py OUT.npz`) it writes the predictions of each
method (fitted on a ctc zoo and, where the method can, on a cnn_small zoo; each fit predicts
both zoos) to OUT.npz. `tests/data/cnn_reference.npz` holds them as the code computed them
before the transformer and INR kinds reached the predictors (commit 0eb910d);
`tests/test_new_kinds.py` recomputes them with today's code and asks for equal bits, so
results stored for CNN zoos stay valid without a method version bump.

The test runs this file in a subprocess with the generators' pinned kernels
(`zoo_bench.generate.population.PINNED_ENV`: baseline x86-64 code paths, one thread), so the
numbers do not depend on the CPU model; the reference records the torch version it was made
with, and another torch build skips the comparison.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

METHODS = ("statnn", "deepsets", "mlp", "sne", "sne_stats", "nfn_np", "nfn_hnp", "nft")
SMALL = {  # per method: hyperparameters that keep a fit to a second or two
    "sne": {"max_epochs": 2, "li_batch": 2, "chunk_size": 16, "train_chunks": 4},
    "sne_stats": {"max_epochs": 2, "li_batch": 2, "chunk_size": 16, "train_chunks": 4},
    "nfn_np": {"batch_size": 8},
    "nfn_hnp": {"batch_size": 8},
    "nft": {"batch_size": 8},
}
RUNS = 24


def make_zoos(root: Path) -> dict[str, object]:
    """A ctc zoo and a cnn_small zoo (16x16), random weights of a per-run scale, relu and tanh
    runs, test_accuracy a noisy function of the scale (so fits have something to learn)."""
    from zoo_bench import Zoo, ZooWriter, cnn_small, ctc

    rng = np.random.default_rng(17)
    zoos = {}
    for arch in (ctc(size=16), cnn_small()):
        out = root / arch.name
        with ZooWriter(out, arch.name, [arch], {"kind": "test"}) as w:
            for r in range(RUNS):
                scale = float(rng.uniform(0.05, 0.6))
                flats = rng.normal(0, scale, size=(2, arch.n_params)).astype(np.float32)
                rows = [dict(run_id=f"r{r}", dataset="toy", epoch=e,
                             hp_activation="tanh" if r % 2 else "relu",
                             test_accuracy=float(scale + rng.normal(0, 0.05)),
                             train_accuracy=float(scale), test_loss=1.0, train_loss=1.0)
                        for e in (0, 1)]
                w.add_many(arch.name, flats, rows)
        zoos[arch.name] = Zoo.open(out)
    return zoos


def predictions(root: Path) -> dict[str, np.ndarray]:
    """'<method>/<fit zoo>/<predicted zoo>' -> predictions, for every fit the method supports."""
    from zoo_bench import Budget, FitContext, get_predictor

    zoos = make_zoos(root)
    out = {}
    for method in METHODS:
        for fit_name, zoo in zoos.items():
            p = get_predictor(method)(**SMALL.get(method, {}))
            if not p.supports(zoo.architecture_of(0)):
                continue
            n = len(zoo)
            train, val = zoo.subset(np.arange(0, n // 2)), zoo.subset(np.arange(n // 2, n))
            p.fit(train, val, "test_accuracy",
                  FitContext(seed=3, device="cpu", budget=Budget(max_epochs=2)))
            for pred_name, target in zoos.items():
                if p.can_predict(target.architecture_of(0)):
                    out[f"{method}/{fit_name}/{pred_name}"] = p.predict(target)
    return out


def main(path: str) -> None:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        preds = predictions(Path(tmp))
    np.savez(path, torch_version=np.array(torch.__version__), **preds)


if __name__ == "__main__":
    main(sys.argv[1])
