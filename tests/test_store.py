"""The zoo store: what goes in comes back bit-exact, and every kind of damage is named."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from zoo_bench import Architecture, LayerSpec, Zoo, ZooWriter
from zoo_bench.errors import ZooFormatError
from zoo_bench.families import cnn_s, ctc
from zoo_bench.store import MANIFEST, TABLE, WEIGHTS, sha256_file

WIDE = Architecture(  # another shape family: 5x5 padded convs, max-pool, three dense layers
    "wide",
    (
        LayerSpec("conv2d", (12, 3, 5, 5), (12,), padding=2, pool="max2"),
        LayerSpec("conv2d", (7, 12, 3, 3), (7,), stride=2, pool="gap"),
        LayerSpec("linear", (32, 7), (32,)),
        LayerSpec("linear", (5, 32), (5,)),
    ),
    (3, 12, 12),
    family="wide",
)
ARCHS = [ctc(size=16), cnn_s(), WIDE]


def rows(n: int, run: str, dataset: str = "toy", activation: str = "relu") -> list[dict]:
    return [
        dict(run_id=run, dataset=dataset, epoch=e, hp_activation=activation, hp_lr=0.1 * (e + 1),
             test_accuracy=0.1 * e, train_accuracy=0.15 * e, test_loss=1.0, train_loss=0.9)
        for e in range(n)
    ]


def write_mixed(out, seed: int = 0) -> dict[int, np.ndarray]:
    """A zoo whose networks alternate between three architectures; returns what went in."""
    rng = np.random.default_rng(seed)
    written, k = {}, 0
    with ZooWriter(out, "mixed", ARCHS, {"kind": "test"}) as w:
        for step, arch in enumerate([ARCHS[0], ARCHS[1], ARCHS[0], ARCHS[2], ARCHS[1]]):
            flats = rng.normal(size=(3, arch.n_params)).astype(np.float32)
            w.add_many(arch.name, flats, rows(3, f"run{step}", dataset=f"d{step % 2}",
                                              activation=["relu", "tanh"][step % 2]))
            for f in flats:
                written[k] = f
                k += 1
    return written


@pytest.fixture
def mixed(tmp_path):
    written = write_mixed(tmp_path / "mixed")
    return Zoo.open(tmp_path / "mixed"), written


def test_round_trip_is_bit_exact_across_architectures(mixed):
    zoo, written = mixed
    assert len(zoo) == 15 and sorted(zoo.architectures) == ["cnn_s", "ctc", "wide"]
    for i, flat in written.items():
        assert zoo.flat(i).view(np.uint32).tobytes() == flat.view(np.uint32).tobytes()
    groups = zoo.arch_groups()
    assert groups["ctc"].tolist() == [0, 1, 2, 6, 7, 8]
    for name, pos in groups.items():
        back = pos[::-1]
        np.testing.assert_array_equal(zoo.flat_batch(back), np.stack([written[i] for i in back]))
        params = zoo.params(pos)
        arch = zoo.architectures[name]
        shapes = [layer.weight_shape for layer in arch.layers]
        assert [tuple(w.shape[1:]) for w, _ in params] == shapes
        torch.testing.assert_close(arch.flatten(params), torch.from_numpy(zoo.flat_batch(pos)))
    for arch in ARCHS:
        assert zoo.architectures[arch.name] == arch
    x = torch.zeros(2, 3, 12, 12)
    assert zoo.module(int(groups["wide"][0]))(x).shape == (2, 5)


def test_table_holds_ids_rows_and_derived_gap(mixed):
    zoo, _ = mixed
    t = zoo.table
    assert t["network_id"].tolist() == list(range(15))
    assert list(t.columns[:9]) == ["network_id", "run_id", "architecture", "dataset", "epoch",
                                   "weight_offset", "n_params", "nonfinite", "hp_activation"]
    np.testing.assert_allclose(t["generalization_gap"], t["train_accuracy"] - t["test_accuracy"])
    assert zoo.datasets == ["d0", "d1"] and zoo.hyperparameters == ["hp_activation", "hp_lr"]
    view = zoo.subset("architecture == 'cnn_s' and epoch > 0")
    assert len(view) == 4 and set(view.table["run_id"]) == {"run1", "run4"}
    np.testing.assert_array_equal(view.flat(0), zoo.flat(4))
    np.testing.assert_allclose(zoo.targets("test_accuracy", [1, 2]), [0.1, 0.2])
    with pytest.raises(KeyError, match="no property 'nope'"):
        zoo.targets("nope")
    with pytest.raises(ValueError, match="one architecture"):
        zoo.flat_batch([0, 3])


def test_same_input_gives_the_same_zoo(tmp_path):
    write_mixed(tmp_path / "a")
    write_mixed(tmp_path / "b")
    assert Zoo.open(tmp_path / "a").manifest_sha256 == Zoo.open(tmp_path / "b").manifest_sha256


def test_nonfinite_weights_are_flagged(tmp_path):
    arch = ARCHS[0]
    flats = np.ones((4, arch.n_params), np.float32)
    flats[1, 7], flats[3, 0] = np.nan, -np.inf
    with ZooWriter(tmp_path / "z", "z", [arch], {}) as w:
        w.add_many("ctc", flats[:2], rows(2, "a"))
        w.add_many("ctc", flats[2:], pd.DataFrame(rows(2, "b")))
    zoo = Zoo.open(tmp_path / "z", verify=True)
    assert zoo.table["nonfinite"].tolist() == [False, True, False, True]
    assert zoo.query("not nonfinite").tolist() == [0, 2]


# --- damage: each is caught and named ----------------------------------------------------------
@pytest.fixture
def zoo_dir(tmp_path):
    write_mixed(tmp_path / "z")
    return tmp_path / "z"


def flip_byte(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def edit_manifest(folder, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def rewrite_table(folder, change) -> None:
    """Edit the table and re-seal it in the manifest, as a careless tool might."""
    table = pd.read_parquet(folder / TABLE)
    change(table)
    table.to_parquet(folder / TABLE, index=False)

    def reseal(m):
        m["files"][TABLE] = sha256_file(folder / TABLE)
        m["sizes"][TABLE] = (folder / TABLE).stat().st_size

    edit_manifest(folder, reseal)


def test_missing_and_extra_files(zoo_dir):
    (zoo_dir / "notes.txt").write_text("hi")
    with pytest.raises(ZooFormatError, match=r"unexpected files \['notes.txt'\]"):
        Zoo.open(zoo_dir)
    (zoo_dir / "notes.txt").unlink()
    (zoo_dir / WEIGHTS).unlink()
    with pytest.raises(ZooFormatError, match=r"missing files \['weights.f32'\]"):
        Zoo.open(zoo_dir)
    (zoo_dir / MANIFEST).unlink()
    with pytest.raises(ZooFormatError, match="no manifest.json"):
        Zoo.open(zoo_dir)
    with pytest.raises(ZooFormatError, match="not a zoo folder"):
        Zoo.open(zoo_dir / "nowhere")


def test_table_sha256_mismatch(zoo_dir):
    flip_byte(zoo_dir / TABLE, (zoo_dir / TABLE).stat().st_size // 2)
    with pytest.raises(ZooFormatError, match="networks.parquet: sha256 differs"):
        Zoo.open(zoo_dir)


def test_weight_damage_is_found_by_verify(zoo_dir):
    flip_byte(zoo_dir / WEIGHTS, 1000)
    zoo = Zoo.open(zoo_dir)  # cheap checks pass: same size
    with pytest.raises(ZooFormatError, match="weights.f32: sha256 differs"):
        zoo.verify()
    with pytest.raises(ZooFormatError, match="sha256 differs"):
        Zoo.open(zoo_dir, verify=True)


def test_truncated_weight_file(zoo_dir):
    with open(zoo_dir / WEIGHTS, "r+b") as f:
        f.truncate(4000)
    with pytest.raises(ZooFormatError, match=r"weights.f32 has 4000 bytes.*truncated"):
        Zoo.open(zoo_dir)


def test_architecture_shape_disagreeing_with_the_manifest(zoo_dir):
    def widen(m):
        m["architectures"]["ctc"]["layers"][0]["weight_shape"] = [16, 1, 5, 5]

    edit_manifest(zoo_dir, widen)
    with pytest.raises(ZooFormatError, match="manifest says 4970 parameters, its layers hold 5226"):
        Zoo.open(zoo_dir)

    def shrink(m):
        m["architectures"]["ctc"]["layers"][0]["weight_shape"] = [16, 1, 2, 2]
        m["architectures"]["ctc"]["n_params"] = 4970 - 80

    edit_manifest(zoo_dir, shrink)
    with pytest.raises(ZooFormatError, match="has 4970 weights but architecture ctc needs 4890"):
        Zoo.open(zoo_dir)


def test_nonfinite_flag_disagreeing_with_weights(zoo_dir):
    def lie(table):
        table.loc[4, "nonfinite"] = True

    rewrite_table(zoo_dir, lie)
    zoo = Zoo.open(zoo_dir)
    with pytest.raises(ZooFormatError, match="network 4: nonfinite flag disagrees"):
        zoo.verify()


def test_unknown_format_version(zoo_dir):
    edit_manifest(zoo_dir, lambda m: m.update(format_version=99))
    with pytest.raises(ZooFormatError, match="format version 99 is not supported"):
        Zoo.open(zoo_dir)
    (zoo_dir / MANIFEST).write_text("{not json")
    with pytest.raises(ZooFormatError, match="not valid JSON"):
        Zoo.open(zoo_dir)


# --- the writer is atomic ----------------------------------------------------------------------
def test_writer_that_raises_midway_leaves_nothing(tmp_path):
    arch = ARCHS[0]
    writer = ZooWriter(tmp_path / "z", "z", [arch], {})
    with pytest.raises(RuntimeError, match="power cut"), writer as w:
        w.add_many("ctc", np.zeros((2, arch.n_params)), rows(2, "a"))
        raise RuntimeError("power cut")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ZooFormatError):
        Zoo.open(tmp_path / "z")


def test_writer_failing_in_close_leaves_nothing(tmp_path):
    arch = ARCHS[0]
    w = ZooWriter(tmp_path / "z", "z", [arch], {})
    w.add_many("ctc", np.zeros((1, arch.n_params)), [dict(run_id="a", epoch=0)])
    with pytest.raises(ZooFormatError, match="lack required columns"):
        w.close()
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_input_and_replaces_only_when_told(tmp_path, zoo_dir):
    with pytest.raises(FileExistsError, match="--overwrite"):
        ZooWriter(zoo_dir, "z", ARCHS, {})
    with ZooWriter(zoo_dir, "z", ARCHS, {}, overwrite=True) as w:
        with pytest.raises(ZooFormatError, match="'mlp' is not declared"):
            w.add_many("mlp", np.zeros((1, 3)), rows(1, "a"))
        with pytest.raises(ZooFormatError, match=r"needs \(B, 4970\) weights and B rows"):
            w.add_many("ctc", np.zeros((2, 10)), rows(2, "a"))
        w.add("cnn_s", np.full(2464, 0.5), **rows(1, "only")[0])
    zoo = Zoo.open(zoo_dir, verify=True)
    assert len(zoo) == 1 and zoo.flat(0)[0] == 0.5
    assert sorted(p.name for p in zoo_dir.parent.iterdir()) == ["z"]


# --- manifests that are JSON but not manifests, cached content checks, permissions ------------
@pytest.mark.parametrize("body", ["[1, 2]", "42", '"zoo"', "null"])
def test_a_manifest_that_is_json_but_not_an_object_is_a_clear_error(zoo_dir, body):
    (zoo_dir / MANIFEST).write_text(body)
    with pytest.raises(ZooFormatError, match="not an object: not a zoo-bench manifest"):
        Zoo.open(zoo_dir)


def test_a_manifest_missing_its_fields_is_a_clear_error(zoo_dir):
    edit_manifest(zoo_dir, lambda m: m.pop("files"))
    with pytest.raises(ZooFormatError, match=r"fields \['files'\] are missing"):
        Zoo.open(zoo_dir)


def age(folder, seconds: float = 60.0) -> None:
    """Date every file of a zoo back, as if it had been written a while ago."""
    for p in folder.iterdir():
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def write_nan(path, network_offset: int) -> None:
    """NaN into one weight, in place: same size, same inode, flags untouched."""
    with open(path, "r+b") as f:
        f.seek(network_offset * 4)
        f.write(np.float32(np.nan).tobytes())


def test_verify_cached_catches_nan_of_the_right_size_and_remembers_passes(zoo_dir, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    age(zoo_dir)
    zoo = Zoo.open(zoo_dir)
    assert zoo.verify_cached() is True  # checked
    assert zoo.verify_cached() is False  # remembered: this file state passed
    records = list((tmp_path / "home" / "verified").iterdir())
    assert len(records) == 1  # kept outside the zoo folder, which holds only its three files
    assert sorted(p.name for p in zoo_dir.iterdir()) == sorted([MANIFEST, TABLE, WEIGHTS])

    write_nan(zoo_dir / WEIGHTS, int(zoo.table["weight_offset"].iat[5]) + 3)
    assert zoo.nonfinite_count() == 1 and int(zoo.table["nonfinite"].sum()) == 0
    with pytest.raises(ZooFormatError, match="zoo mixed .* does not match its manifest.*"
                                             "weights.f32: sha256 differs.*re-create"):
        Zoo.open(zoo_dir).verify_cached()
    with pytest.raises(ZooFormatError):  # a failure is never remembered as a pass
        Zoo.open(zoo_dir).verify_cached()


def test_verify_cached_does_not_remember_a_file_younger_than_its_clock(zoo_dir, tmp_path):
    zoo = Zoo.open(zoo_dir)  # just written: an edit within the timestamp granularity could hide
    assert zoo.verify_cached(tmp_path / "cache") is True
    assert zoo.verify_cached(tmp_path / "cache") is True


def test_zoo_folders_and_atomic_files_follow_the_umask(tmp_path):
    from zoo_bench.atomic import write_text_atomic

    old = os.umask(0o022)
    try:
        write_mixed(tmp_path / "z")
        write_text_atomic(tmp_path / "cell.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "z").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "z" / MANIFEST).stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "cell.json").stat().st_mode) == 0o644
