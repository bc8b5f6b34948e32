"""How tests/data/zoo_v1 and zoo_v1_outputs.npy were made (run from the repository root).

They were written by zoo-bench d38fb1e, the last commit before format version 2, so they are
what a format-1 zoo on a user's disk looks like; tests/test_arch_vit_inr.py checks that this
zoo still opens, verifies, hashes and runs as it did then. Do not regenerate them: the point is
that they come from the old code.
"""

import numpy as np
import torch

from zoo_bench import Architecture, LayerSpec, Zoo, ZooWriter

ARCH = Architecture("tiny_v1", (
    LayerSpec("conv2d", (2, 1, 3, 3), (2,), stride=2, pool="max2", pool_first=True),
    LayerSpec("conv2d", (3, 2, 2, 2), (3,), pool="flatten"),
    LayerSpec("linear", (4, 3 * 2 * 2), (4,)),
    LayerSpec("linear", (3, 4), (3,)),
), (1, 16, 16), family="tiny")


def main() -> None:
    rng = np.random.default_rng(17)
    flats = rng.normal(0, 0.5, size=(3, ARCH.n_params)).astype(np.float32)
    rows = [dict(run_id=f"r{i}", dataset="toy", epoch=i,
                 hp_activation=["relu", "tanh", "gelu"][i], test_accuracy=0.2 * i,
                 train_accuracy=0.25 * i, test_loss=1.0, train_loss=0.9) for i in range(3)]
    source = {"kind": "test fixture", "made_by": "d38fb1e"}
    with ZooWriter("tests/data/zoo_v1", "zoo_v1", [ARCH], source) as w:
        w.add_many(ARCH.name, flats, rows)
    zoo = Zoo.open("tests/data/zoo_v1", verify=True)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = np.stack([zoo.module(i)(x).numpy() for i in range(len(zoo))])  # (3, 2, 3)
    np.save("tests/data/zoo_v1_outputs.npy", out)


if __name__ == "__main__":
    main()
