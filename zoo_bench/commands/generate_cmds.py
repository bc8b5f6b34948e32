"""`zoo-bench zoo generate`: train model zoos offline from a benchmark.toml preset."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_bench.errors import ZooBenchError
from zoo_bench.generate import generate_preset, preset_configs
from zoo_bench.generate.datasets import dataset_names
from zoo_bench.generate.hyper import FAMILIES
from zoo_bench.generate.report import QUANTILES, accuracy_spread
from zoo_bench.store import Zoo


@click.command("generate")
@click.option("--preset", default="ci", show_default=True,
              help="A [generate.<preset>] table of benchmark.toml.")
@click.option("--dataset", "datasets", multiple=True, type=click.Choice(dataset_names()),
              help="Dataset(s) instead of the preset's (repeat the option for several).")
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(FAMILIES)),
              help="Architecture family(ies) instead of the preset's.")
@click.option("--runs", type=click.IntRange(min=1), help="Training runs per zoo.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs per run.")
@click.option("--seed", type=int, help="Zoo seed (same seed, same zoo).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder for the zoos (default: the cache, see ZOO_BENCH_HOME).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=1),
              help="CPU worker processes (default: one per available core).")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="Folder with torchvision datasets (mnist, fashion_mnist, cifar10_gs, svhn_gs).")
@click.option("--download", is_flag=True, help="Fetch vision datasets with torchvision first.")
@click.option("--overwrite", is_flag=True,
              help="Replace zoos (or unfinished work) made with another configuration.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--executor", type=click.Choice(("local", "ray")), default="local",
              show_default=True,
              help="local: worker processes here; ray: each group of runs as a Ray task (needs "
              "pip install 'zoo-bench[ray]'; see docs/cluster.md).")
@click.option("--address", default=None, metavar="ADDR",
              help="With --executor ray: join the Ray cluster at ADDR instead of starting a "
              "local Ray instance.")
@click.option("--ray-cpus", type=click.IntRange(min=1), default=None,
              help="With --executor ray and no --address: CPUs of the local Ray instance "
              "(default: all cores).")
def generate(
    preset: str, datasets: tuple[str, ...], families: tuple[str, ...], runs: int | None,
    epochs: int | None, seed: int | None, out: Path | None, device: str, workers: int | None,
    data_root: Path | None, download: bool, overwrite: bool, no_progress: bool, executor: str,
    address: str | None, ray_cpus: int | None,
) -> None:
    """Train a preset's zoos (one per dataset x family), resuming unfinished ones.

    Zoos are named <preset>-<dataset>-<family>; complete ones are skipped.
    """
    overrides = {
        "datasets": list(datasets) or None, "families": list(families) or None,
        "runs": runs, "epochs": epochs, "seed": seed,
    }
    if executor == "local" and (address is not None or ray_cpus is not None):
        raise click.UsageError("--address and --ray-cpus need --executor ray")
    try:
        runner = None
        if executor == "ray":
            if device != "cpu":
                raise ZooBenchError("--executor ray generates on CPUs only; drop --device")
            from zoo_bench.ray_executor import RayGroupRunner

            runner = RayGroupRunner(address=address, num_cpus=ray_cpus)
        names = [c.name for c in preset_configs(preset, overrides)]
        paths = generate_preset(
            preset, out_dir=out, progress=not no_progress, overrides=overrides, device=device,
            workers=workers, data_root=data_root, download=download, overwrite=overwrite,
            runner=runner,
        )
        zoos = {name: Zoo.open(paths[name]) for name in names}
    except (ZooBenchError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    click.echo("final test accuracy (INR zoos: test loss) per zoo, quantiles over runs:")
    for name, zoo in zoos.items():
        spread = accuracy_spread(zoo)
        keys = [f"q{round(q * 100)}" for q in QUANTILES]
        quantiles = " ".join(f"{k}={spread[k]:.3f}" for k in keys)
        click.echo(
            f"  {name}: {spread['runs']} runs, {spread['property']} {quantiles}, "
            f"diverged={spread['diverged']} "
            f"-> {zoo.path}"
        )
