"""Zoo generation: train populations of networks offline and write them as canonical zoos.

`generate_preset("ci")` makes every zoo of the `[generate.ci]` preset in benchmark.toml (skipping
complete ones, resuming interrupted ones); `preset_zoo_names` lists them without making them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo_bench.generate.datasets import Dataset, dataset_names, load_dataset
from zoo_bench.generate.population import (
    DataSource,
    GenerationError,
    TaskRunner,
    generate_zoos,
)
from zoo_bench.generate.presets import (
    PresetError,
    ZooConfig,
    preset_configs,
    preset_names,
    preset_zoo_names,
)
from zoo_bench.paths import zoo_path

__all__ = [
    "DataSource", "Dataset", "GenerationError", "PresetError", "ZooConfig", "dataset_names",
    "generate_preset", "load_dataset", "preset_configs", "preset_names", "preset_zoo_names",
]


def generate_preset(
    preset: str,
    out_dir: Path | None = None,
    only: Sequence[str] | None = None,
    progress: bool = True,
    *,
    overrides: Mapping[str, Any] | None = None,
    device: str = "cpu",
    workers: int | None = None,
    data_root: str | Path | None = None,
    download: bool = False,
    overwrite: bool = False,
    table: Mapping[str, Any] | None = None,
    isolate: bool = True,
    runner: TaskRunner | None = None,
) -> dict[str, Path]:
    """Generate the preset's zoos that are not complete yet; returns zoo name -> folder.

    Zoos go to `out_dir / name`, by default the cache (`zoo_bench.paths.zoo_path`). `only`
    keeps zoos by name, or by dataset or family (e.g. ``["digits"]``). `overrides` replaces
    preset keys (runs, epochs, seed, datasets, families ...). `workers` CPU processes train
    groups in parallel (default: one per available core), each on one thread, with kernels
    pinned to the baseline x86-64 code paths so the bytes do not depend on the CPU
    (`zoo_bench.generate.population.PINNED_ENV`); `isolate=False` trains in this process
    instead, with its own kernels. `table` is the preset's table when it comes from a suite
    file instead of the default benchmark.toml.
    `runner` trains the groups elsewhere (see `generate_zoos`).
    """
    configs = preset_configs(preset, overrides, table)
    if only is not None:
        keep = set(only)
        known = {k for c in configs for k in (c.name, c.dataset, c.family)}
        unknown = sorted(keep - known)
        if unknown:
            raise PresetError(
                f"preset {preset!r} has no zoo, dataset or family {unknown}; "
                f"its zoos: {[c.name for c in configs]}"
            )
        configs = [c for c in configs if keep & {c.name, c.dataset, c.family}]
    outs = [Path(out_dir) / c.name if out_dir is not None else zoo_path(c.name) for c in configs]
    return generate_zoos(
        configs, outs, preset=preset, device=device, workers=workers,
        data=DataSource(None if data_root is None else str(data_root), download),
        overwrite=overwrite, progress=progress, isolate=isolate, runner=runner,
    )
