"""Image classification tasks that zoos are trained on: built-in ones and torchvision's on disk.

Every dataset is one grey channel scaled to [-1, 1], 10 classes, with a fixed train/test split.
The built-in tasks (`digits`, `mnist1d`, `shapes`) are 16x16 and made locally, deterministically,
without any download; the vision tasks (`mnist`, `fashion_mnist`, `cifar10_gs`, `svhn_gs`) are
read from torchvision's on-disk formats under a data root, at their native 28x28 or 32x32.
The signal sets (`sines`) are what INR zoos are fitted to: fixed coordinates, and a family of
1-D waves from which each run draws its own target (`SignalSet`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import pickle
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from zoo_bench.errors import ZooBenchError

SIZE = 16
N_CLASSES = 10


class DatasetError(ZooBenchError):
    """A dataset is unknown, or its files are missing or malformed."""


@dataclass(frozen=True)
class Dataset:
    """A fixed train/test split: images (N, 1, H, W) float32 in [-1, 1], labels int64 in 0..9."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    def sha256(self) -> str:
        """Fingerprint of the split's content, recorded with every zoo trained on it."""
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_test, self.y_test):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


# --- built-in 16x16 tasks -------------------------------------------------------------------


def _digits() -> Dataset:
    """scikit-learn's 1,797 handwritten 8x8 digits (UCI), bilinearly upsampled to 16x16."""
    import torch
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = torch.nn.functional.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    x = (x.clamp(0, 1) * 2 - 1).numpy()
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:500], order[500:]
    y = d.target.astype(np.int64)
    return Dataset("digits", x[train], y[train], x[test], y[test])


def _mnist1d() -> Dataset:
    """MNIST-1D made by the package's generator (default arguments, seed 42), each 40-sample
    signal drawn as a filled curve around its zero line on a 16x16 canvas."""
    from mnist1d.data import get_dataset_args, make_dataset

    state_np, state_py = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())  # seeds numpy's global generator with args.seed
    finally:
        np.random.set_state(state_np)
        random.setstate(state_py)
    return Dataset(
        "mnist1d",
        _render_signals(d["x"]), np.asarray(d["y"], np.int64),
        _render_signals(d["x_test"]), np.asarray(d["y_test"], np.int64),
    )


def _render_signals(signals: np.ndarray, limit: float = 3.0, sub: int = 5) -> np.ndarray:
    """Area between each signal and zero, anti-aliased by exact pixel coverage, as images.

    Each column averages `sub` evenly spaced, linearly interpolated samples, so resampling the
    40-sample signal to 16 columns keeps its detail instead of aliasing it.
    """
    n, length = signals.shape
    pos = (np.arange(SIZE * sub) + 0.5) * length / (SIZE * sub) - 0.5
    v = np.stack([np.interp(pos, np.arange(length), s) for s in signals])  # (n, SIZE * sub)
    v = np.clip(v, -limit, limit)
    edges = np.linspace(limit, -limit, SIZE + 1)  # row r spans [edges[r+1], edges[r]]
    top, bottom = edges[:-1][None, :, None], edges[1:][None, :, None]
    lo, hi = np.minimum(v, 0)[:, None, :], np.maximum(v, 0)[:, None, :]
    cover = np.clip(np.minimum(hi, top) - np.maximum(lo, bottom), 0, None) / (top - bottom)
    cover = cover.reshape(n, SIZE, SIZE, sub).mean(axis=-1)
    return (cover * 2 - 1).astype(np.float32)[:, None]


SHAPE_CLASSES = (
    "disk", "ring", "square", "square outline", "triangle",
    "plus", "cross", "horizontal stripes", "vertical stripes", "checkerboard",
)


def _shapes(n_train: int = 3000, n_test: int = 1000, seed: int = 1234) -> Dataset:
    """Ten procedurally drawn shape and texture classes with random position, scale, rotation,
    contrast, background gradient and pixel noise, so no single pixel statistic gives them away."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = np.arange(n) % N_CLASSES
    rng.shuffle(y)
    x = _draw_shapes(y, rng)
    return Dataset("shapes", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _draw_shapes(y: np.ndarray, rng: np.random.Generator, sub: int = 4) -> np.ndarray:
    """Render labelled shapes at `sub`x supersampling, then average down to 16x16."""
    n, res = len(y), SIZE * sub
    g = (np.arange(res) + 0.5) / res * 2 - 1  # pixel centres in [-1, 1]
    gy, gx = np.meshgrid(g, g, indexing="ij")
    cx, cy = rng.uniform(-0.25, 0.25, n), rng.uniform(-0.25, 0.25, n)
    scale = rng.uniform(0.5, 0.8, n)
    angle = rng.uniform(-0.35, 0.35, n)  # radians, small so plus and cross stay distinct
    freq = rng.uniform(1.5, 2.5, n)  # stripe half-periods per unit of the shape's radius
    phase = rng.uniform(0, 2 * np.pi, n)
    masks = np.empty((n, res, res), np.float32)
    for i in range(n):
        c, s = np.cos(angle[i]), np.sin(angle[i])
        u = (c * (gx - cx[i]) + s * (gy - cy[i])) / scale[i]
        v = (-s * (gx - cx[i]) + c * (gy - cy[i])) / scale[i]
        masks[i] = _SHAPE_DRAWERS[int(y[i])](u, v, freq[i], phase[i])
    img = masks.reshape(n, SIZE, sub, SIZE, sub).mean(axis=(2, 4))
    contrast = rng.uniform(0.5, 1.0, n) * rng.choice([-1.0, 1.0], n, p=[0.15, 0.85])
    level = rng.uniform(-0.4, 0.4, n)
    gradient = rng.normal(0, 0.15, (n, 2))
    ramp_y, ramp_x = np.meshgrid(np.linspace(-1, 1, SIZE), np.linspace(-1, 1, SIZE), indexing="ij")
    img = (
        level[:, None, None]
        + gradient[:, :1, None] * ramp_y + gradient[:, 1:, None] * ramp_x
        + contrast[:, None, None] * (img - 0.5)
        + rng.normal(0, 0.2, img.shape)
    )
    return np.clip(img, -1, 1).astype(np.float32)[:, None]


def _stripes(t: np.ndarray, freq: float, phase: float) -> np.ndarray:
    return (np.sin(t * freq * np.pi + phase) > 0).astype(np.float32)


_SHAPE_DRAWERS: tuple[Callable[..., np.ndarray], ...] = (
    lambda u, v, f, p: (u**2 + v**2 < 0.8).astype(np.float32),
    lambda u, v, f, p: ((u**2 + v**2 < 0.9) & (u**2 + v**2 > 0.4)).astype(np.float32),
    lambda u, v, f, p: ((abs(u) < 0.8) & (abs(v) < 0.8)).astype(np.float32),
    lambda u, v, f, p: (
        (np.maximum(abs(u), abs(v)) < 0.9) & (np.maximum(abs(u), abs(v)) > 0.6)
    ).astype(np.float32),
    lambda u, v, f, p: ((v < 0.7) & (v > 1.7 * abs(u) - 0.9)).astype(np.float32),
    lambda u, v, f, p: (
        ((abs(u) < 0.25) & (abs(v) < 1.0)) | ((abs(v) < 0.25) & (abs(u) < 1.0))
    ).astype(np.float32),
    lambda u, v, f, p: (
        ((abs(u - v) < 0.35) | (abs(u + v) < 0.35)) & (np.maximum(abs(u), abs(v)) < 0.8)
    ).astype(np.float32),
    lambda u, v, f, p: _stripes(v, f, p) * (np.maximum(abs(u), abs(v)) < 1.1),
    lambda u, v, f, p: _stripes(u, f, p) * (np.maximum(abs(u), abs(v)) < 1.1),
    lambda u, v, f, p: (
        (_stripes(u, f * 0.8, p) != _stripes(v, f * 0.8, p)) & (np.maximum(abs(u), abs(v)) < 1.1)
    ).astype(np.float32),
)

BUILTIN: dict[str, Callable[[], Dataset]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "shapes": _shapes,
}

# --- 1-D signals for INR zoos ----------------------------------------------------------------


@dataclass(frozen=True)
class SignalSet:
    """Sine waves sin(2 pi f x + phase) on coordinates x in [-1, 1], f and phase drawn per run
    (uniform over `frequency` in cycles per unit of x, and over `phase`). A run is fitted on the
    `x_train` grid and scored on the held-out `x_test` coordinates (the grid's midpoints)."""

    name: str
    x_train: np.ndarray  # (n_train, 1) float32
    x_test: np.ndarray  # (n_test, 1) float32
    frequency: tuple[float, float]
    phase: tuple[float, float]

    @property
    def in_features(self) -> int:
        return int(self.x_train.shape[1])

    def draw(self, rng: np.random.Generator) -> tuple[float, float]:
        """One run's (frequency, phase), drawn from its own generator."""
        return float(rng.uniform(*self.frequency)), float(rng.uniform(*self.phase))

    def sha256(self) -> str:
        """Fingerprint of the coordinates and the ranges, recorded with every zoo fitted to it."""
        h = hashlib.sha256(json.dumps([self.frequency, self.phase]).encode())
        for a in (self.x_train, self.x_test):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()


def _sines(n_train: int = 128) -> SignalSet:
    grid = np.linspace(-1.0, 1.0, n_train)
    mid = (grid[:-1] + grid[1:]) / 2
    return SignalSet(
        "sines", grid.astype(np.float32)[:, None], mid.astype(np.float32)[:, None],
        frequency=(0.5, 4.0), phase=(0.0, 2 * math.pi),
    )


SIGNALS: dict[str, Callable[[], SignalSet]] = {"sines": _sines}


@cache
def load_signal(name: str) -> SignalSet:
    """The named signal set (for INR families)."""
    if name not in SIGNALS:
        raise DatasetError(
            f"{name!r} is not a signal set; INR families are fitted to one of {sorted(SIGNALS)}"
        )
    d = SIGNALS[name]()
    for a in (d.x_train, d.x_test):
        a.flags.writeable = False
    return d


# --- torchvision datasets read from their on-disk formats ------------------------------------

VISION = ("mnist", "fashion_mnist", "cifar10_gs", "svhn_gs")
_TORCHVISION_CLASS = {
    "mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10_gs": "CIFAR10", "svhn_gs": "SVHN",
}


def _to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, C, H, W) -> one grey channel (mean over channels) in [-1, 1]."""
    grey = images.astype(np.float32).mean(axis=1, keepdims=True)
    return grey / 127.5 - 1.0


def _read_idx(path: Path) -> np.ndarray:
    """An MNIST idx file (optionally .gz): magic, dims, then big-endian uint8 data."""
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    if not path.exists():
        raise DatasetError(f"{path} is missing")
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path} is not an idx file of unsigned bytes (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"{path}: header says {dims}, file holds {body.size} bytes (truncated?)")
    return body.reshape(dims)


def _mnist_like(root: Path, name: str) -> Dataset:
    raw = root / _TORCHVISION_CLASS[name] / "raw"
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = _read_idx(raw / f"{prefix}-images-idx3-ubyte")
        y = _read_idx(raw / f"{prefix}-labels-idx1-ubyte")
        parts[split] = (_to_unit(x[:, None]), y.astype(np.int64))
    return Dataset(name, *parts["train"], *parts["test"])


def _cifar10(root: Path) -> Dataset:
    folder = root / "cifar-10-batches-py"

    def load(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            path = folder / f
            if not path.exists():
                raise DatasetError(f"{path} is missing")
            with open(path, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")  # noqa: S301 (torchvision's own format)
            xs.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], np.int64))
        return _to_unit(np.concatenate(xs)), np.concatenate(ys)

    train = load([f"data_batch_{k}" for k in range(1, 6)])
    return Dataset("cifar10_gs", *train, *load(["test_batch"]))


def _svhn(root: Path) -> Dataset:
    from scipy.io import loadmat

    parts = []
    for split in ("train", "test"):
        path = root / f"{split}_32x32.mat"
        if not path.exists():
            raise DatasetError(f"{path} is missing")
        mat = loadmat(path)
        x = np.transpose(mat["X"], (3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
        y = mat["y"].astype(np.int64).reshape(-1) % 10  # SVHN labels digit 0 as 10
        parts += [_to_unit(x), y]
    return Dataset("svhn_gs", *parts)


def _download(name: str, root: Path) -> None:
    """Fetch a vision dataset with torchvision (only when it is installed and asked for)."""
    try:
        import torchvision.datasets as tvd
    except ImportError:
        raise DatasetError(
            f"--download needs torchvision to fetch {name}; install it (pip install torchvision) "
            f"or put the files under {root} yourself"
        ) from None
    cls = getattr(tvd, _TORCHVISION_CLASS[name])
    for train in (True, False):
        if name == "svhn_gs":
            cls(str(root), split="train" if train else "test", download=True)
        else:
            cls(str(root), train=train, download=True)


def _vision(name: str, root: Path | None, download: bool) -> Dataset:
    if root is None:
        raise DatasetError(
            f"dataset {name!r} is read from torchvision's files on disk: pass --data-root DIR "
            "(add --download to fetch it with torchvision)"
        )
    root = Path(root)
    if download:
        _download(name, root)
    reader = {
        "mnist": lambda r: _mnist_like(r, "mnist"),
        "fashion_mnist": lambda r: _mnist_like(r, "fashion_mnist"),
        "cifar10_gs": _cifar10,
        "svhn_gs": _svhn,
    }[name]
    try:
        return reader(root)
    except DatasetError as e:
        raise DatasetError(
            f"cannot read {name} under {root}: {e}; lay it out as torchvision does "
            "(or pass --download with torchvision installed)"
        ) from None


def dataset_names() -> list[str]:
    """Every dataset name `load_dataset` understands: built-ins, then plug-ins (entry points)."""
    from zoo_bench.registry import DATASETS

    own = [*BUILTIN, *VISION, *SIGNALS]
    return [*own, *(n for n in DATASETS.names() if n not in own)]


def load_dataset(
    name: str, root: str | Path | None = None, download: bool = False
) -> Dataset | SignalSet:
    """The named dataset's fixed split (built-ins are cached per process, vision ones read
    once), or for a signal set (`SIGNALS`) its `SignalSet`."""
    if name in BUILTIN:
        return _builtin(name)
    if name in SIGNALS:
        return load_signal(name)
    if name in VISION:
        return _vision_cached(name, None if root is None else str(root), download)
    if name in dataset_names():
        return _plugin_cached(name)
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}")


@cache
def _builtin(name: str) -> Dataset:
    return _readonly(BUILTIN[name]())


@cache
def _plugin_cached(name: str) -> Dataset:
    """A dataset from the entry-point group `zoo_bench.datasets`: a function returning one."""
    from zoo_bench.registry import DATASETS

    data = DATASETS.get(name)()
    if not isinstance(data, Dataset):
        raise DatasetError(f"plug-in dataset {name!r} returned {type(data).__name__}, not a "
                           "zoo_bench.generate.Dataset")
    return _readonly(data)


@lru_cache(maxsize=4)
def _vision_cached(name: str, root: str | None, download: bool) -> Dataset:
    return _readonly(_vision(name, None if root is None else Path(root), download))


def _readonly(d: Dataset) -> Dataset:
    for a in (d.x_train, d.y_train, d.x_test, d.y_test):
        a.flags.writeable = False
    return d
