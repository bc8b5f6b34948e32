"""Splits: by run, reproducible from (zoo, kind, seed), hashed files, non-finite ones counted."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from zoo_bench import Zoo, ZooWriter
from zoo_bench.families import ctc
from zoo_bench.splits import (
    SplitError,
    load_split,
    nfn_split,
    read_permutation,
    standard_split,
)


def zoo_with_nonfinite(folder, runs=20, epochs=(0, 1, 2, 5), bad=((3, 5), (7, 1)), seed=0):
    """A zoo named "z" of `runs` runs x `epochs`; (run, epoch) pairs in `bad` hold a NaN weight."""
    arch = ctc(size=16)
    rng = np.random.default_rng(seed)
    with ZooWriter(folder, "z", [arch], {"kind": "test"}) as w:
        for r in range(runs):
            flats = rng.normal(size=(len(epochs), arch.n_params)).astype(np.float32)
            for k, e in enumerate(epochs):
                if (r, e) in bad:
                    flats[k, 0] = np.nan
            rows = [dict(run_id=f"run{r}", dataset="toy", epoch=e, hp_activation="relu",
                         test_accuracy=float(rng.uniform()), train_accuracy=0.5)
                    for e in epochs]
            w.add_many(arch.name, flats, rows)
    return Zoo.open(folder)


def runs_of(zoo, split, part):
    return set(split.view(zoo, part).table["run_id"])


def test_no_run_has_checkpoints_on_two_sides(make_zoo, tmp_path):
    zoo = make_zoo(runs=30, epochs=(0, 1, 2, 3, 4))
    split = standard_split(zoo, seed=0, epochs="all", root=tmp_path / "splits")
    train, val, test = (runs_of(zoo, split, p) for p in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train | val | test) == 30
    assert (len(train), len(val), len(test)) == (18, 6, 6)
    assert sum(len(split.ids[p]) for p in split.ids) == 30 * 5


def test_final_epoch_by_default(make_zoo, tmp_path):
    zoo = make_zoo(runs=10, epochs=(0, 3, 7))
    split = standard_split(zoo, seed=0, root=tmp_path / "s")
    for part in ("train", "val", "test"):
        assert set(split.view(zoo, part).table["epoch"]) == {7}
    assert sum(len(v) for v in split.ids.values()) == 10


def test_same_seed_same_ids_and_sha_different_seed_differs(make_zoo, tmp_path):
    zoo = make_zoo(runs=40)
    a = standard_split(zoo, seed=1, root=tmp_path / "a")
    b = standard_split(zoo, seed=1, root=tmp_path / "b")
    c = standard_split(zoo, seed=2, root=tmp_path / "a")
    assert a.sha256 == b.sha256
    assert all(np.array_equal(a.ids[p], b.ids[p]) for p in a.ids)
    assert a.sha256["test"] != c.sha256["test"]
    assert not np.array_equal(a.ids["test"], c.ids["test"])
    assert a.folder != c.folder


def test_split_reads_back_identically(make_zoo, tmp_path):
    zoo = make_zoo(runs=12)
    made = standard_split(zoo, seed=3, root=tmp_path / "s")
    read = load_split(made.folder, zoo)
    assert read.sha256 == made.sha256
    assert all(np.array_equal(read.ids[p], made.ids[p]) for p in made.ids)
    assert json.loads((made.folder / "test.json").read_text())["zoo"] == zoo.name


def test_default_folder_is_under_home_and_names_the_zoo_content(make_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    zoo = make_zoo(runs=6, name="toyzoo")
    split = standard_split(zoo, seed=0)
    assert split.folder.parent == tmp_path / "home" / "splits" / "toyzoo" / zoo.manifest_sha256[:16]


def test_split_inside_the_zoo_folder_is_refused(make_zoo):
    zoo = make_zoo(runs=6)
    with pytest.raises(SplitError, match="inside zoo folder"):
        standard_split(zoo, seed=0, root=zoo.path / "splits")


def test_nonfinite_networks_are_excluded_and_counted(tmp_path):
    zoo = zoo_with_nonfinite(tmp_path / "z")
    final = standard_split(zoo, seed=0, root=tmp_path / "s")
    assert final.n_nonfinite == 1
    assert "run3" not in set().union(*(runs_of(zoo, final, p) for p in final.ids))
    every = standard_split(zoo, seed=0, epochs="all", root=tmp_path / "s")
    assert every.n_nonfinite == 2
    kept = np.concatenate([every.positions(zoo, p) for p in every.ids])
    assert not zoo.table["nonfinite"].to_numpy()[kept].any()
    assert len(kept) == len(zoo) - 2


def test_a_split_refuses_another_zoo(make_zoo, tmp_path):
    zoo = make_zoo(runs=6, name="a", seed=0)
    other = make_zoo(runs=6, name="b", seed=1)
    split = standard_split(zoo, seed=0, root=tmp_path / "s")
    with pytest.raises(SplitError, match="belongs to zoo a"):
        split.view(other, "test")


def test_a_split_refuses_the_same_name_with_new_content(tmp_path):
    zoo = zoo_with_nonfinite(tmp_path / "one", seed=0)
    split = standard_split(zoo, seed=0, root=tmp_path / "s")
    remade = zoo_with_nonfinite(tmp_path / "two", seed=5)
    with pytest.raises(SplitError, match="content changed"):
        load_split(split.folder, remade)


def test_damaged_split_file_is_detected(make_zoo, tmp_path):
    split = standard_split(make_zoo(runs=6), seed=0, root=tmp_path / "s")
    (split.folder / "val.json").write_text('{"network_ids": []}')
    with pytest.raises(SplitError, match="sha256 differs"):
        load_split(split.folder)


def test_views_must_not_be_split(make_zoo, tmp_path):
    zoo = make_zoo(runs=6)
    with pytest.raises(SplitError, match="whole zoo"):
        standard_split(zoo.subset([0, 1, 2]), seed=0, root=tmp_path / "s")


def test_bad_options_are_named(make_zoo, tmp_path):
    zoo = make_zoo(runs=6)
    with pytest.raises(SplitError, match="epochs must be"):
        standard_split(zoo, seed=0, epochs="last", root=tmp_path / "s")
    with pytest.raises(SplitError, match="summing to 1"):
        standard_split(zoo, seed=0, ratios=(0.5, 0.5, 0.5), root=tmp_path / "s")
    with pytest.raises(SplitError, match="non-negative integer"):
        standard_split(zoo, seed=-1, root=tmp_path / "s")
    with pytest.raises(SplitError, match="2 usable runs"):
        standard_split(make_zoo(runs=2, name="tiny"), seed=0, root=tmp_path / "s")


def test_nfn_split_follows_the_published_recipe(make_zoo, tmp_path):
    zoo = make_zoo(runs=40, epochs=(0, 20, 86))
    perm = np.random.default_rng(9).permutation(len(zoo))
    (tmp_path / "perm.csv").write_text("0\n" + "\n".join(map(str, perm)) + "\n")
    split = nfn_split(zoo, tmp_path / "perm.csv", root=tmp_path / "s")

    finals = [int(i) for i in perm if zoo.table["epoch"].iat[int(i)] == 86]
    trainval = list(range(20))
    random.Random(0).shuffle(trainval)
    assert split.ids["test"].tolist() == finals[20:]
    assert split.ids["train"].tolist() == [finals[i] for i in trainval[:16]]
    assert split.ids["val"].tolist() == [finals[i] for i in trainval[16:]]
    assert nfn_split(zoo, tmp_path / "perm.csv", root=tmp_path / "s").sha256 == split.sha256


def test_permutation_files_parse_robustly(tmp_path):
    (tmp_path / "header.csv").write_text("index\n2\n0\n1\n")
    assert read_permutation(tmp_path / "header.csv").tolist() == [2, 0, 1]
    (tmp_path / "stray.csv").write_text("0\n2\n0\n1\n")
    assert read_permutation(tmp_path / "stray.csv").tolist() == [2, 0, 1]
    np.save(tmp_path / "p.npy", np.array([1, 0, 2]))
    assert read_permutation(tmp_path / "p.npy").tolist() == [1, 0, 2]


def test_permutation_duplicates_are_rejected(tmp_path):
    (tmp_path / "dup.csv").write_text("3\n1\n2\n1\n0\n")
    with pytest.raises(SplitError, match=r"index 1 appears twice \(lines 2 and 4\)"):
        read_permutation(tmp_path / "dup.csv")
    (tmp_path / "junk.csv").write_text("1\nx\n")
    with pytest.raises(SplitError, match="not an index"):
        read_permutation(tmp_path / "junk.csv")


def test_nfn_permutation_must_match_the_zoo(make_zoo, tmp_path):
    zoo = make_zoo(runs=4, epochs=(86,))
    (tmp_path / "p.csv").write_text("0\n1\n999\n")
    with pytest.raises(SplitError, match="not network ids"):
        nfn_split(zoo, tmp_path / "p.csv", root=tmp_path / "s")
