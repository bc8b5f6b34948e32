"""Train / val / test splits of a zoo, written as hashed files so every result names its data.

A split partitions a zoo's **training runs** (`run_id`), never single checkpoints, so no run has
checkpoints on two sides. It is a pure function of (zoo content, kind, seed, options): the same
inputs give byte-identical files and hence the same sha256s, which every result row carries.

Files live outside the zoo folder (the zoo checks its own file list), by default in
``zoo_bench.paths.home() / "splits" / <zoo name> / <first 16 hex of the manifest sha256> / <tag>``:
``train.json``, ``val.json``, ``test.json`` (each a self-describing list of `network_id`s) and
``split.json`` (written last: the summary with each part's sha256, so its presence means done).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoo_bench.atomic import write_bytes_atomic
from zoo_bench.errors import ZooBenchError
from zoo_bench.paths import home
from zoo_bench.store import Zoo, sha256_file

FORMAT_NAME = "zoo-bench-split"
FORMAT_VERSION = 1
PARTS = ("train", "val", "test")
SUMMARY = "split.json"
DEFAULT_RATIOS = (0.6, 0.2, 0.2)
EPOCHS = ("final", "all")
NFN_EPOCH = 86


class SplitError(ZooBenchError):
    """A split cannot be made, read, or used with the zoo at hand."""


@dataclass(frozen=True, eq=False)
class Split:
    """One split of one zoo: the network ids of each part and the sha256 of each part's file."""

    zoo: str
    zoo_manifest_sha256: str
    kind: str
    seed: int
    options: dict[str, Any]
    ids: dict[str, np.ndarray]
    n_nonfinite: int
    sha256: dict[str, str]
    folder: Path

    def positions(self, zoo: Zoo, part: str) -> np.ndarray:
        """Positions in `zoo.table` of one part's networks (in the split's order)."""
        self.check_zoo(zoo)
        if part not in PARTS:
            raise SplitError(f"unknown split part {part!r}; parts are {PARTS}")
        pos = pd.Index(zoo.table["network_id"]).get_indexer(self.ids[part])
        if (pos < 0).any():
            raise SplitError(
                f"split {self.folder}: {int((pos < 0).sum())} {part} network ids are not in zoo "
                f"{zoo.name}; delete the split folder and make it again"
            )
        return pos

    def view(self, zoo: Zoo, part: str) -> Zoo:
        """The zoo restricted to one part (a view sharing the weight map)."""
        return zoo.subset(self.positions(zoo, part))

    def check_zoo(self, zoo: Zoo) -> None:
        """Raise unless `zoo` is the zoo (name and content) this split was made from."""
        if zoo.name != self.zoo or zoo.manifest_sha256 != self.zoo_manifest_sha256:
            raise SplitError(
                f"split {self.folder} belongs to zoo {self.zoo} "
                f"(manifest {self.zoo_manifest_sha256[:16]}), not to zoo {zoo.name} "
                f"(manifest {zoo.manifest_sha256[:16]}) at {zoo.path}; the zoo's content changed "
                "or this is another zoo: make the split again from the zoo you score on"
            )


def default_root() -> Path:
    """Where splits go unless a folder is given: `home()/splits`."""
    return home() / "splits"


def standard_split(
    zoo: Zoo,
    seed: int,
    epochs: str = "final",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    root: str | os.PathLike | None = None,
) -> Split:
    """The seeded train/val/test split by run: 60/20/20 % of the runs unless `ratios` differ.

    `epochs="final"` keeps each run's last checkpoint (as the literature does), `"all"` keeps
    every checkpoint. Checkpoints with non-finite weights are dropped and counted (with "final",
    a run whose last checkpoint is non-finite drops out; no earlier epoch stands in for it).
    Runs are sorted, shuffled by a generator seeded from (zoo name, "standard", seed), and cut
    in ratio order; each part's ids are sorted by network_id.
    """
    _check_whole(zoo)
    ratios = _check_ratios(ratios)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SplitError(f"seed must be a non-negative integer, got {seed!r}")
    if epochs not in EPOCHS:
        raise SplitError(f"epochs must be one of {EPOCHS}, got {epochs!r}")
    t = zoo.table
    chosen = np.ones(len(t), dtype=bool)
    if epochs == "final":
        chosen = (t["epoch"] == t.groupby("run_id")["epoch"].transform("max")).to_numpy()
    nonfinite = t["nonfinite"].to_numpy(dtype=bool)
    n_nonfinite = int((chosen & nonfinite).sum())
    kept = t[chosen & ~nonfinite]
    runs = sorted(set(kept["run_id"].tolist()), key=str)
    rng = np.random.default_rng(_seed_sequence(zoo.name, "standard", seed))
    order = [runs[i] for i in rng.permutation(len(runs))]
    cuts = np.round(np.cumsum(ratios) * len(runs)).astype(int)
    groups = np.split(np.array(order, dtype=object), cuts[:2])
    if min(len(g) for g in groups) == 0:
        raise SplitError(
            f"zoo {zoo.name} has {len(runs)} usable runs ({n_nonfinite} non-finite checkpoints "
            f"excluded); ratios {ratios} leave a part empty: use a zoo with more runs"
        )
    ids = {}
    for part, group in zip(PARTS, groups, strict=True):
        rows = kept[kept["run_id"].isin(set(group.tolist()))]
        ids[part] = np.sort(rows["network_id"].to_numpy())
    tag = f"standard-seed{seed}-{epochs}-" + "-".join(f"{r:g}" for r in ratios)
    options = {"epochs": epochs, "ratios": list(ratios)}
    return _write(zoo, "standard", seed, options, ids, n_nonfinite, _folder(zoo, tag, root))


def nfn_split(
    zoo: Zoo,
    permutation: str | os.PathLike,
    epoch: int = NFN_EPOCH,
    root: str | os.PathLike | None = None,
) -> Split:
    """The Small CNN Zoo split of NFN / ScaleGMN / neural-graphs, from their permutation file.

    Their loaders reorder the rows by a fixed permutation, keep `step == 86`, require finite
    weights, take the second half as test, and shuffle the first half with Python's
    ``random.Random(0)`` before cutting it 80/20 into train/val. The permutation file is not
    shipped (it is not reachable offline): pass its path. Indices refer to rows of the original
    `metrics.csv`, which the Small CNN Zoo importer keeps as `network_id`. Non-finite networks
    are dropped and counted (the published zoos have none at step 86, so the split is theirs).
    The seed plays no part: this split is the same for every seed.

    Their CSVs start with a stray header line that `pd.read_csv(header=None)` reads as index 0,
    so network 0 appears twice; `read_permutation` drops that line (see there). Where network 0
    is not a step-86 checkpoint their step filter dropped the copy too, and the splits agree.
    """
    _check_whole(zoo)
    perm_path = Path(permutation)
    perm = read_permutation(perm_path)
    pos = pd.Index(zoo.table["network_id"]).get_indexer(perm)
    if (pos < 0).any():
        missing = perm[pos < 0]
        raise SplitError(
            f"{perm_path}: {len(missing)} indices are not network ids of zoo {zoo.name} "
            f"(first: {missing[:5].tolist()}); is this the permutation file of this zoo?"
        )
    t = zoo.table
    pos = pos[t["epoch"].to_numpy()[pos] == epoch]
    if not len(pos):
        raise SplitError(
            f"zoo {zoo.name} has no networks at epoch {epoch}; it has epochs "
            f"{sorted(int(e) for e in t['epoch'].unique())}"
        )
    nonfinite = t["nonfinite"].to_numpy(dtype=bool)[pos]
    pos = pos[~nonfinite]
    half = int(0.5 * len(pos))
    trainval = list(range(half))
    random.Random(0).shuffle(trainval)
    cut = int(0.8 * len(trainval))
    ids_all = t["network_id"].to_numpy()[pos]
    ids = {
        "train": ids_all[trainval[:cut]],
        "val": ids_all[trainval[cut:]],
        "test": ids_all[half:],
    }
    if min(len(v) for v in ids.values()) == 0:
        raise SplitError(
            f"zoo {zoo.name} has only {len(pos)} finite networks at epoch {epoch}; "
            "too few for a train/val/test split"
        )
    perm_sha = sha256_file(perm_path)
    options = {"epoch": int(epoch), "permutation_sha256": perm_sha}
    folder = _folder(zoo, f"nfn-epoch{epoch}-perm{perm_sha[:16]}", root)
    return _write(zoo, "nfn", 0, options, ids, int(nonfinite.sum()), folder)


def read_permutation(path: str | os.PathLike) -> np.ndarray:
    """Indices from a `.npy` array or a text/CSV file (one index a line; a header line is skipped).

    A first line that repeats a later index while nothing else repeats is the NFN files' stray
    header (pandas' column label "0") and is dropped; any other repeated index is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"permutation file {path} not found; pass the path of the index file")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise SplitError(f"{path}: need a 1-D integer array, got {arr.dtype} {arr.shape}")
        values, lines = arr.astype(np.int64).tolist(), list(range(1, len(arr) + 1))
    else:
        values, lines = _parse_index_text(path)
        if values and values.count(values[0]) == 2 and len(set(values[1:])) == len(values) - 1:
            values, lines = values[1:], lines[1:]
    if not values:
        raise SplitError(f"{path} holds no indices")
    seen: dict[int, int] = {}
    for v, line in zip(values, lines, strict=True):
        if v in seen:
            raise SplitError(
                f"{path}: index {v} appears twice (lines {seen[v]} and {line}); a permutation "
                "lists each network once: fix or re-download the file"
            )
        seen[v] = line
    arr = np.asarray(values, dtype=np.int64)
    if (arr < 0).any():
        raise SplitError(f"{path}: negative index {int(arr[arr < 0][0])}")
    return arr


def _parse_index_text(path: Path) -> tuple[list[int], list[int]]:
    values, lines = [], []
    for no, raw in enumerate(path.read_text().splitlines(), start=1):
        field = raw.split(",")[-1].strip().strip('"')
        if not field or field.startswith("#"):
            continue
        try:
            values.append(int(field))
        except ValueError:
            if not values:
                continue
            raise SplitError(f"{path}:{no}: {raw!r} is not an index") from None
        lines.append(no)
    return values, lines


def load_split(folder: str | os.PathLike, zoo: Zoo | None = None) -> Split:
    """Read a split folder back, checking each part's sha256 (and that it belongs to `zoo`)."""
    folder = Path(folder)
    try:
        summary = json.loads((folder / SUMMARY).read_text())
    except FileNotFoundError:
        raise SplitError(f"{folder} has no {SUMMARY}: not a split folder, or unfinished") from None
    if summary.get("format") != FORMAT_NAME or summary.get("format_version") != FORMAT_VERSION:
        raise SplitError(f"{folder / SUMMARY}: not a version {FORMAT_VERSION} zoo-bench split")
    ids, shas = {}, {}
    for part in PARTS:
        path = folder / f"{part}.json"
        if not path.is_file():
            raise SplitError(f"{path} is missing; delete {folder} and make the split again")
        shas[part] = sha256_file(path)
        if shas[part] != summary["sha256"][part]:
            raise SplitError(f"{path}: sha256 differs from {SUMMARY}; delete {folder}, remake it")
        ids[part] = np.asarray(json.loads(path.read_text())["network_ids"])
    split = Split(
        zoo=summary["zoo"],
        zoo_manifest_sha256=summary["zoo_manifest_sha256"],
        kind=summary["kind"],
        seed=int(summary["seed"]),
        options=summary["options"],
        ids=ids,
        n_nonfinite=int(summary["n_nonfinite"]),
        sha256=shas,
        folder=folder,
    )
    if zoo is not None:
        split.check_zoo(zoo)
    return split


def _write(
    zoo: Zoo,
    kind: str,
    seed: int,
    options: dict[str, Any],
    ids: dict[str, np.ndarray],
    n_nonfinite: int,
    folder: Path,
) -> Split:
    """Write each part (skipping files already byte-identical), then the summary last."""
    head = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "zoo": zoo.name,
        "zoo_manifest_sha256": zoo.manifest_sha256,
        "kind": kind,
        "seed": int(seed),
        "options": options,
    }
    shas = {}
    for part in PARTS:
        ids_list = ids[part].tolist()
        body = {**head, "part": part, "n": len(ids_list), "network_ids": ids_list}
        data = _json_bytes(body)
        _write_if_changed(folder / f"{part}.json", data)
        shas[part] = hashlib.sha256(data).hexdigest()
    summary = {
        **head,
        "n_nonfinite": n_nonfinite,
        "n": {p: len(ids[p]) for p in PARTS},
        "sha256": shas,
    }
    _write_if_changed(folder / SUMMARY, _json_bytes(summary))
    return Split(
        zoo=zoo.name,
        zoo_manifest_sha256=head["zoo_manifest_sha256"],
        kind=kind,
        seed=int(seed),
        options=options,
        ids={p: np.asarray(ids[p]) for p in PARTS},
        n_nonfinite=n_nonfinite,
        sha256=shas,
        folder=folder,
    )


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _write_if_changed(path: Path, data: bytes) -> None:
    """Atomically write `data` unless the file already holds exactly it."""
    if not (path.is_file() and path.read_bytes() == data):
        write_bytes_atomic(path, data)


def _folder(zoo: Zoo, tag: str, root: str | os.PathLike | None) -> Path:
    base = Path(root) if root is not None else default_root()
    folder = base / zoo.name / zoo.manifest_sha256[:16] / tag
    zoo_dir = Path(zoo.path).resolve()
    if folder.resolve().is_relative_to(zoo_dir):
        raise SplitError(
            f"split folder {folder} is inside zoo folder {zoo_dir}; the zoo checks its own "
            "file list, so put splits elsewhere (default: $ZOO_BENCH_HOME/splits)"
        )
    return folder


def _seed_sequence(zoo_name: str, kind: str, seed: int) -> np.random.SeedSequence:
    key = hashlib.sha256(f"{zoo_name}\0{kind}".encode()).digest()
    return np.random.SeedSequence([int(seed), int.from_bytes(key[:8], "little")])


def _check_whole(zoo: Zoo) -> None:
    if len(zoo) != int(zoo.manifest["n_networks"]):
        raise SplitError(
            f"zoo {zoo.name}: got a view of {len(zoo)} of its {zoo.manifest['n_networks']} "
            "networks; split the whole zoo (Zoo.open(path)), then take views of the parts"
        )


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    r = tuple(float(x) for x in ratios)
    if len(r) != 3 or min(r) <= 0 or abs(sum(r) - 1) > 1e-9:
        raise SplitError(
            f"ratios must be three positive fractions (train, val, test) summing to 1, got {ratios}"
        )
    return r  # type: ignore[return-value]
