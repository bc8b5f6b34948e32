"""Tasks turn a suite's zoos into cells: standard, the cross-dataset and cross-arch matrices."""

from __future__ import annotations

import numpy as np
import pytest

from zoo_bench import Zoo, ZooWriter
from zoo_bench.errors import RegistryError
from zoo_bench.families import cnn_s, ctc, ctc_widths, siren, vit
from zoo_bench.tasks import (
    Task,
    TaskError,
    get_task,
    list_tasks,
    property_columns,
    register_task,
    zoo_info,
)

ARCHS = {"ctc": lambda: ctc(size=16), "cnn_s": cnn_s,
         "ctc_widths": lambda: ctc_widths(24, size=16)}


def write_zoo(folder, name, dataset, family, runs=10, epochs=(0, 3), seed=0, nan_gap=False):
    """A random-weight zoo of one dataset and one family, `runs` runs x `epochs` checkpoints."""
    arch = ARCHS[family]()
    rng = np.random.default_rng(seed)
    with ZooWriter(folder / name, name, [arch], {"kind": "test"}) as w:
        for r in range(runs):
            flats = rng.normal(size=(len(epochs), arch.n_params)).astype(np.float32)
            rows = [dict(run_id=f"{name}/run{r}", dataset=dataset, epoch=e, hp_activation="relu",
                         test_accuracy=float(rng.uniform()),
                         train_accuracy=np.nan if nan_gap else float(rng.uniform()),
                         train_loss=float(rng.uniform()))
                    for e in epochs]
            w.add_many(arch.name, flats, rows)
    return Zoo.open(folder / name)


@pytest.fixture
def suite_zoos(tmp_path):
    """2 datasets x 2 families: t-digits-ctc, t-digits-cnn_s, t-shapes-ctc, t-shapes-cnn_s."""
    zoos = {}
    for k, (dataset, family) in enumerate(
        [(d, f) for d in ("digits", "shapes") for f in ("ctc", "cnn_s")]
    ):
        name = f"t-{dataset}-{family}"
        zoos[name] = write_zoo(tmp_path / "zoos", name, dataset, family, seed=k)
    return zoos


def cells_of(task, zoos, tmp_path, seed=0, **kw):
    return get_task(task).cells(zoos, seed, split_root=tmp_path / "splits", **kw)


def test_zoo_info_reads_dataset_and_family(suite_zoos):
    assert zoo_info(suite_zoos["t-shapes-cnn_s"]) == ("shapes", "cnn_s")


def test_standard_has_one_leak_free_cell_per_zoo(suite_zoos, tmp_path):
    cells = cells_of("standard", suite_zoos, tmp_path)
    assert [(c.source, c.target) for c in cells] == [(n, n) for n in sorted(suite_zoos)]
    for c in cells:
        runs = [set(v.table["run_id"]) for v in (c.train, c.val, c.test)]
        assert not (runs[0] & runs[1]) and not (runs[0] & runs[2]) and not (runs[1] & runs[2])
        assert (len(runs[0]), len(runs[1]), len(runs[2])) == (6, 2, 2)
        assert set(c.test.table["epoch"]) == {3}
        assert c.train_sha256 == c.source_split.sha256["train"]
        assert c.property == "test_accuracy"


def test_cross_dataset_is_the_full_matrix_per_family(suite_zoos, tmp_path):
    cells = cells_of("cross_dataset", suite_zoos, tmp_path)
    pairs = {(c.source, c.target) for c in cells}
    assert pairs == {
        (f"t-{a}-{f}", f"t-{b}-{f}")
        for f in ("ctc", "cnn_s")
        for a in ("digits", "shapes")
        for b in ("digits", "shapes")
    }
    off = next(c for c in cells if (c.source, c.target) == ("t-digits-ctc", "t-shapes-ctc"))
    assert set(off.train.table["dataset"]) == set(off.val.table["dataset"]) == {"digits"}
    assert set(off.test.table["dataset"]) == {"shapes"}


def test_cross_arch_pairs_families_on_each_dataset_both_ways(suite_zoos, tmp_path):
    cells = cells_of("cross_arch", suite_zoos, tmp_path)
    off = {(c.source, c.target) for c in cells if c.source != c.target}
    assert off == {
        ("t-digits-ctc", "t-digits-cnn_s"), ("t-digits-cnn_s", "t-digits-ctc"),
        ("t-shapes-ctc", "t-shapes-cnn_s"), ("t-shapes-cnn_s", "t-shapes-ctc"),
    }
    assert len(cells) == 8
    c = next(c for c in cells if (c.source, c.target) == ("t-digits-ctc", "t-digits-cnn_s"))
    assert set(c.train.table["architecture"]) == {"ctc"}
    assert set(c.test.table["architecture"]) == {"cnn_s"}


def test_diagonals_equal_standard_and_cells_share_fits_by_source(suite_zoos, tmp_path):
    standard = {c.source: c for c in cells_of("standard", suite_zoos, tmp_path)}
    cross = cells_of("cross_dataset", suite_zoos, tmp_path) + cells_of(
        "cross_arch", suite_zoos, tmp_path
    )
    for c in cross:
        ref = standard[c.source]
        assert c.fit_key == ref.fit_key
        assert np.array_equal(c.train.table["network_id"], ref.train.table["network_id"])
        if c.source == c.target:
            assert (c.train_sha256, c.val_sha256, c.test_sha256) == (
                ref.train_sha256, ref.val_sha256, ref.test_sha256
            )
    assert len({c.fit_key for c in cross}) == len(suite_zoos)


def test_cells_are_reproducible_and_change_with_the_seed(suite_zoos, tmp_path):
    def shas(seed):
        cells = cells_of("cross_dataset", suite_zoos, tmp_path, seed=seed)
        return [(c.train_sha256, c.test_sha256) for c in cells]

    assert shas(0) == shas(0)
    assert all(a != b for a, b in zip(shas(0), shas(1), strict=True))


def test_property_and_epochs_are_selectable(suite_zoos, tmp_path):
    cells = cells_of("standard", suite_zoos, tmp_path, property="generalization_gap", epochs="all")
    c = cells[0]
    assert c.property == "generalization_gap" and c.fit_key[-1] == "generalization_gap"
    assert set(c.train.table["epoch"]) == {0, 3}
    with pytest.raises(TaskError, match="no property 'flops'"):
        cells_of("standard", suite_zoos, tmp_path, property="flops")


def test_missing_targets_are_reported(tmp_path):
    zoo = write_zoo(tmp_path, "gapless", "digits", "ctc", nan_gap=True)
    with pytest.raises(TaskError, match="no finite generalization_gap"):
        cells_of("standard", {"gapless": zoo}, tmp_path, property="generalization_gap")


def test_mixed_zoos_join_standard_only(suite_zoos, tmp_path):
    arch_a, arch_b = ctc(size=16), cnn_s()
    with ZooWriter(tmp_path / "mixed", "mixed", [arch_a, arch_b], {"kind": "test"}) as w:
        for r, arch in enumerate([arch_a, arch_b] * 3):
            w.add(arch.name, np.zeros(arch.n_params), run_id=f"r{r}", dataset="digits", epoch=0,
                  hp_activation="relu", test_accuracy=0.1 * r)
    zoos = {**suite_zoos, "mixed": Zoo.open(tmp_path / "mixed")}
    assert zoo_info(zoos["mixed"]).family is None
    assert "mixed" in {c.source for c in cells_of("standard", zoos, tmp_path)}
    assert "mixed" not in {c.source for c in cells_of("cross_arch", zoos, tmp_path)}


def test_targets_only_families_are_tested_on_but_never_trained_on(suite_zoos, tmp_path):
    zoos = {**suite_zoos,
            "t-digits-ctc_widths": write_zoo(tmp_path / "zoos", "t-digits-ctc_widths", "digits",
                                             "ctc_widths", seed=9)}
    only = {"targets_only": ("ctc_widths",)}
    for task in ("standard", "cross_dataset", "cross_arch"):
        cells = cells_of(task, zoos, tmp_path, options=only)
        assert "t-digits-ctc_widths" not in {c.source for c in cells}
    arch = {(c.source, c.target) for c in cells_of("cross_arch", zoos, tmp_path, options=only)}
    assert {("t-digits-ctc", "t-digits-ctc_widths"),
            ("t-digits-cnn_s", "t-digits-ctc_widths")} <= arch
    # without the option the width-varied zoo is a source like any other
    assert "t-digits-ctc_widths" in {c.source for c in cells_of("standard", zoos, tmp_path)}


def test_pairs_with_keeps_only_pairs_with_a_zoo_of_those_families(suite_zoos, tmp_path):
    with_cnn_s = {"pairs_with": ("cnn_s",)}
    arch = {(c.source, c.target)
            for c in cells_of("cross_arch", suite_zoos, tmp_path, options=with_cnn_s)}
    assert arch == {(f"t-{d}-{s}", f"t-{d}-{t}") for d in ("digits", "shapes")
                    for s, t in (("ctc", "cnn_s"), ("cnn_s", "ctc"), ("cnn_s", "cnn_s"))}
    standard = cells_of("standard", suite_zoos, tmp_path, options=with_cnn_s)
    assert {c.source for c in standard} == {"t-digits-cnn_s", "t-shapes-cnn_s"}
    both = {**with_cnn_s, "targets_only": ("ctc",)}
    assert {(c.source, c.target) for c in cells_of("cross_arch", suite_zoos, tmp_path,
                                                   options=both)} == {
        (f"t-{d}-cnn_s", f"t-{d}-{t}") for d in ("digits", "shapes") for t in ("ctc", "cnn_s")}


def test_registry_lists_tasks_and_answers_typos():
    assert [t.name for t in list_tasks()][:3] == ["standard", "cross_dataset", "cross_arch"]
    assert all(t.description for t in list_tasks())
    with pytest.raises(RegistryError, match="did you mean 'cross_arch'"):
        get_task("cross_archs")


def test_registering_a_duplicate_name_fails():
    with pytest.raises(RegistryError, match="already registered"):

        @register_task
        class Again(Task):
            name = "standard"
            description = "dup"

            def pairs(self, infos):
                return []


def test_nfn_task_uses_the_permutation_file(tmp_path):
    zoo = write_zoo(tmp_path, "ctc-toy", "toy", "ctc", runs=20, epochs=(0, 86))
    perm = tmp_path / "perm.csv"
    perm.write_text("\n".join(map(str, np.random.default_rng(1).permutation(len(zoo)))))
    with pytest.raises(TaskError, match="needs the permutation file of zoo ctc-toy"):
        cells_of("nfn", {"ctc-toy": zoo}, tmp_path)
    options = {"permutations": {"ctc-toy": perm}}
    (cell,) = cells_of("nfn", {"ctc-toy": zoo}, tmp_path, options=options)
    assert (len(cell.train), len(cell.val), len(cell.test)) == (8, 2, 10)
    assert cell.source_split.kind == "nfn"


# --- milestone 3: ViT and INR zoos, any numeric property ------------------------------------


def write_vit_zoo(folder, name, dataset, runs=10, seed=0):
    """A random-weight zoo of two tiny ViT architectures (family "vit") on one dataset."""
    archs = [vit(1, 8, 2, size=16), vit(2, 8, 1, size=16)]
    rng = np.random.default_rng(seed)
    with ZooWriter(folder / name, name, archs, {"kind": "test"}) as w:
        for r in range(runs):
            arch = archs[r % 2]
            rows = [dict(run_id=f"{name}/run{r}", dataset=dataset, epoch=e, hp_activation="gelu",
                         test_accuracy=float(rng.uniform()), train_accuracy=float(rng.uniform()))
                    for e in (0, 3)]
            w.add_many(arch.name, rng.normal(size=(2, arch.n_params)).astype(np.float32), rows)
    return Zoo.open(folder / name)


def write_inr_zoo(folder, name, runs=10, seed=0):
    """A random-weight SIREN zoo (family "inr") fitted to the "sines" signal set, with the
    columns an INR zoo carries: frequency and phase, losses, no accuracies."""
    archs = [siren(1, 8, 10.0), siren(2, 16, 30.0)]
    rng = np.random.default_rng(seed)
    with ZooWriter(folder / name, name, archs, {"kind": "test"}) as w:
        for r in range(runs):
            arch = archs[r % 2]
            freq, phase = float(rng.uniform(0.5, 4)), float(rng.uniform(0, 6.28))
            rows = [dict(run_id=f"{name}/run{r}", dataset="sines", epoch=e, hp_activation="sine",
                         hp_omega_0=float(arch.layers[0].omega_0), frequency=freq, phase=phase,
                         train_loss=float(rng.uniform()), test_loss=float(rng.uniform()))
                    for e in (0, 4)]
            w.add_many(arch.name, rng.normal(size=(2, arch.n_params)).astype(np.float32), rows)
    return Zoo.open(folder / name)


@pytest.fixture
def arch_zoos(tmp_path):
    """ctc and vit zoos on digits and shapes, as a suite listing the default and vit presets
    names them."""
    zoos = {}
    for k, dataset in enumerate(("digits", "shapes")):
        zoos[f"default-{dataset}-ctc"] = write_zoo(tmp_path / "zoos", f"default-{dataset}-ctc",
                                                   dataset, "ctc", seed=k)
        zoos[f"vit-{dataset}-vit"] = write_vit_zoo(tmp_path / "zoos", f"vit-{dataset}-vit",
                                                   dataset, seed=10 + k)
    return zoos


def test_cross_arch_pairs_cnn_and_vit_zoos_of_one_dataset_both_ways(arch_zoos, tmp_path):
    assert zoo_info(arch_zoos["vit-digits-vit"]) == ("digits", "vit")
    cells = cells_of("cross_arch", arch_zoos, tmp_path)
    pairs = {(c.source, c.target) for c in cells}
    assert pairs == {(n, n) for n in arch_zoos} | {
        ("default-digits-ctc", "vit-digits-vit"), ("vit-digits-vit", "default-digits-ctc"),
        ("default-shapes-ctc", "vit-shapes-vit"), ("vit-shapes-vit", "default-shapes-ctc"),
    }
    to_vit = next(c for c in cells if (c.source, c.target) == ("default-digits-ctc",
                                                               "vit-digits-vit"))
    assert {a.family for a in to_vit.train.architectures.values()} == {"ctc"}
    assert {a.family for a in to_vit.test.architectures.values()} == {"vit"}
    assert set(to_vit.test.table["run_id"]) <= set(arch_zoos["vit-digits-vit"].table["run_id"])
    # the CNN -> ViT cell trains exactly like the CNN zoo's own (diagonal) cell: one fit
    own = next(c for c in cells if (c.source, c.target) == ("default-digits-ctc",) * 2)
    assert to_vit.fit_key == own.fit_key


def test_an_inr_zoo_joins_standard_with_its_frequency(arch_zoos, tmp_path):
    inr = write_inr_zoo(tmp_path / "zoos", "inr-sines-inr")
    assert zoo_info(inr) == ("sines", "inr")
    cells = cells_of("standard", {"inr-sines-inr": inr}, tmp_path, property="frequency")
    (cell,) = cells
    assert cell.property == "frequency" and cell.fit_key[-1] == "frequency"
    np.testing.assert_array_equal(cell.test.targets("frequency"), cell.test.table["frequency"])
    assert len(set(cell.train.table["run_id"])) == 6
    # among image zoos, cross_arch matches the INR zoo with nothing but itself
    zoos = {**arch_zoos, "inr-sines-inr": inr}
    infos = {n: zoo_info(z) for n, z in zoos.items()}
    assert [p for p in get_task("cross_arch").pairs(infos) if "inr-sines-inr" in p] == [
        ("inr-sines-inr", "inr-sines-inr")
    ]


def test_a_property_must_be_a_numeric_column_of_each_zoo(arch_zoos, tmp_path):
    inr = write_inr_zoo(tmp_path / "zoos", "inr-sines-inr")
    columns = property_columns(inr)
    assert columns[:4] == ["test_loss", "train_loss", "frequency", "phase"]
    assert {"epoch", "n_params", "hp_omega_0"} <= set(columns)
    assert not {"network_id", "weight_offset", "nonfinite", "dataset", "run_id"} & set(columns)
    # an INR zoo has no accuracy: the error names the zoo and its numeric columns
    with pytest.raises(TaskError, match=r"zoo inr-sines-inr has no property 'test_accuracy'.*"
                                        r"numeric columns: \['test_loss', 'train_loss', "
                                        r"'frequency', 'phase'"):
        cells_of("standard", {"inr-sines-inr": inr}, tmp_path)
    with pytest.raises(TaskError, match="did you mean 'frequency'"):
        cells_of("standard", {"inr-sines-inr": inr}, tmp_path, property="frequncy")
    with pytest.raises(TaskError, match=r"column 'hp_activation' \(.*\) is not a property: a "
                                        "property must be a numeric column"):
        cells_of("standard", {"inr-sines-inr": inr}, tmp_path, property="hp_activation")
    # image zoos have no frequency: a suite predicting it cannot hold them
    with pytest.raises(TaskError, match="zoo default-digits-ctc has no property 'frequency'"):
        cells_of("standard", arch_zoos, tmp_path, property="frequency")


def test_any_numeric_column_is_a_property(suite_zoos, tmp_path):
    cells = cells_of("standard", suite_zoos, tmp_path, property="epoch", epochs="all")
    assert all(c.property == "epoch" for c in cells)
    assert set(cells[0].train.targets("epoch")) == {0.0, 3.0}


def test_missing_dataset_values_are_not_a_dataset(tmp_path):
    arch = siren(1, 8, 10.0)
    with ZooWriter(tmp_path / "anon", "anon", [arch], {"kind": "test"}) as w:
        for r in range(3):
            w.add(arch.name, np.zeros(arch.n_params), run_id=f"r{r}", dataset=None, epoch=0,
                  hp_activation="sine", frequency=float(r))
    assert zoo_info(Zoo.open(tmp_path / "anon")) == (None, "inr")
