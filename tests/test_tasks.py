"""Tasks turn a suite's zoos into cells: standard, the cross-dataset and cross-arch matrices."""

from __future__ import annotations

import numpy as np
import pytest

from zoo_bench import Zoo, ZooWriter
from zoo_bench.errors import RegistryError
from zoo_bench.families import cnn_s, ctc, ctc_widths
from zoo_bench.tasks import Task, TaskError, get_task, list_tasks, register_task, zoo_info

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
