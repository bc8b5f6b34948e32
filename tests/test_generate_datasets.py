"""Datasets zoos are trained on: built-ins made offline and deterministically, and torchvision's
on-disk formats read without torchvision (tested on tiny folders written here)."""

from __future__ import annotations

import gzip
import pickle
import random

import numpy as np
import pytest
import scipy.io

from zoo_bench.generate.datasets import (
    BUILTIN,
    DatasetError,
    _builtin,
    _vision_cached,
    load_dataset,
)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_datasets_are_16x16_grey_in_unit_range_with_ten_balanced_classes(name):
    d = load_dataset(name)
    assert d.x_train.shape[1:] == (1, 16, 16) and d.x_test.shape[1:] == (1, 16, 16)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1
    assert 1000 <= len(d.y_train) <= 4000 and 400 <= len(d.y_test) <= 1000
    counts = np.bincount(d.y_train, minlength=10)
    assert len(counts) == 10 and counts.min() > 0.7 * counts.mean()
    assert not d.x_train.flags.writeable  # shared per process: nobody may change it


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_datasets_are_made_again_bit_identically(name):
    first = load_dataset(name)
    _builtin.cache_clear()
    again = load_dataset(name)
    assert first is not again
    for a, b in zip((first.x_train, first.y_train, first.x_test, first.y_test),
                    (again.x_train, again.y_train, again.x_test, again.y_test), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mnist1d_leaves_the_global_random_state_alone():
    _builtin.cache_clear()
    np.random.seed(5)
    random.seed(5)
    load_dataset("mnist1d")
    assert np.random.rand() == np.random.RandomState(5).rand()
    assert random.random() == random.Random(5).random()


def test_the_tasks_differ():
    """Three different tasks, not one task three times: their mean images differ clearly."""
    means = [load_dataset(n).x_train.mean(axis=0).ravel() for n in sorted(BUILTIN)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.corrcoef(means[i], means[j])[0, 1] < 0.9


# --- torchvision formats ----------------------------------------------------------------------


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def vision_root(tmp_path):
    """A data root holding 6 train / 4 test examples of each vision dataset, as torchvision
    lays them out on disk."""
    rng = np.random.default_rng(0)
    for folder, gz in (("MNIST", False), ("FashionMNIST", True)):
        raw = tmp_path / folder / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 6), ("t10k", 4)):
            write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz)
            write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, gz)
    cifar = tmp_path / "cifar-10-batches-py"
    cifar.mkdir()
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 7]}
        (cifar / name).write_bytes(pickle.dumps(batch))
    for split, n in (("train", 6), ("test", 4)):
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", {
            "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
            "y": (np.arange(n) % 10 + 1).reshape(-1, 1),  # SVHN: digit 0 is label 10
        })
    _vision_cached.cache_clear()
    return tmp_path


@pytest.mark.parametrize("name,size,n_train", [
    ("mnist", 28, 6), ("fashion_mnist", 28, 6), ("cifar10_gs", 32, 10), ("svhn_gs", 32, 6),
])
def test_vision_datasets_read_from_torchvision_files(vision_root, name, size, n_train):
    d = load_dataset(name, root=vision_root)
    assert d.x_train.shape == (n_train, 1, size, size)
    assert d.x_train.min() >= -1 and d.x_train.max() <= 1
    assert d.y_train.min() >= 0 and d.y_train.max() <= 9


def test_grey_is_the_channel_average_scaled_to_unit_range(vision_root):
    batch = pickle.loads((vision_root / "cifar-10-batches-py" / "test_batch").read_bytes())
    rgb = batch[b"data"][0].reshape(3, 32, 32).astype(np.float64)
    got = load_dataset("cifar10_gs", root=vision_root).x_test[0, 0]
    np.testing.assert_allclose(got, rgb.mean(axis=0) / 127.5 - 1, rtol=0, atol=1e-6)
    assert load_dataset("cifar10_gs", root=vision_root).y_test.tolist() == [3, 7]


def test_svhn_label_ten_is_digit_zero(vision_root):
    assert load_dataset("svhn_gs", root=vision_root).y_train.tolist() == [1, 2, 3, 4, 5, 6]
    y = scipy.io.loadmat(vision_root / "test_32x32.mat")["y"].ravel()
    assert (y == 10).sum() == 0 and load_dataset("svhn_gs", root=vision_root).y_test[0] == 1


def test_vision_dataset_without_a_root_says_how_to_get_one():
    with pytest.raises(DatasetError, match="--data-root"):
        load_dataset("mnist")


def test_missing_or_truncated_files_are_named(tmp_path, vision_root):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte is missing"):
        load_dataset("mnist", root=tmp_path / "empty")
    images = vision_root / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    _vision_cached.cache_clear()
    with pytest.raises(DatasetError, match="truncated"):
        load_dataset("mnist", root=vision_root)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="digits, mnist1d, shapes, mnist"):
        load_dataset("imagenet")


def test_the_same_command_trains_vision_zoos_from_a_data_root(vision_root, tmp_path):
    from zoo_bench import Zoo
    from zoo_bench.generate import generate_preset

    paths = generate_preset(
        "smallcnnzoo", out_dir=tmp_path / "zoos", only=["mnist", "svhn_gs"], progress=False,
        overrides={"runs": 3, "epochs": 1, "batch_size": 4, "families": ["ctc", "cnn_small"]},
        workers=1, data_root=vision_root,
    )
    assert sorted(paths) == ["smallcnnzoo-mnist-cnn_small", "smallcnnzoo-mnist-ctc",
                             "smallcnnzoo-svhn_gs-cnn_small", "smallcnnzoo-svhn_gs-ctc"]
    zoo = Zoo.open(paths["smallcnnzoo-svhn_gs-ctc"], verify=True)
    assert zoo.architectures["ctc"].input_shape == (1, 32, 32)
    assert zoo.architectures["ctc"].n_params == 4970
    assert Zoo.open(paths["smallcnnzoo-mnist-cnn_small"]).architectures["cnn_small"].input_shape \
        == (1, 28, 28)
