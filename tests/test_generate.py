"""Generating zoos end to end: the canonical store's columns, exact recorded accuracies, same seed
same bytes, resume after an interruption, skipping finished zoos, and the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import zoo_bench.generate.population as population
from zoo_bench import Zoo
from zoo_bench.cli import main
from zoo_bench.errors import ZooFormatError
from zoo_bench.families import CTC_WIDTHS, ctc
from zoo_bench.generate import (
    GenerationError,
    PresetError,
    ZooConfig,
    generate_preset,
    load_dataset,
    preset_configs,
    preset_zoo_names,
)
from zoo_bench.generate.hyper import sample_runs
from zoo_bench.generate.population import generate_zoos, work_dir
from zoo_bench.generate.report import accuracy_spread
from zoo_bench.generate.trainer import accuracy

TINY = {"datasets": ["digits"], "families": ["ctc"], "runs": 6, "epochs": 2}


def weights_sha(path) -> str:
    return json.loads((path / "manifest.json").read_text())["files"]["weights.f32"]


def tiny(tmp_path, name="a", **kw):
    """The ci preset shrunk to one 6-run, 2-epoch zoo, trained in this process."""
    kw.setdefault("workers", 1)
    return generate_preset("ci", out_dir=tmp_path / name, progress=False,
                           overrides={**TINY, **kw.pop("overrides", {})}, **kw)


def test_preset_names_are_preset_dataset_family():
    assert preset_zoo_names("ci") == [
        f"ci-{d}-{f}" for d in ("digits", "mnist1d", "shapes") for f in ("ctc", "cnn_small")
    ]
    configs = preset_configs("default")
    assert {c.family for c in configs} == {"ctc", "cnn_small", "ctc_widths"}
    assert all(c.checkpoints[0] == 0 and c.checkpoints[-1] == c.epochs for c in configs)
    # training zoos have 1,000 runs; the test-only width zoos their family_runs size
    assert {(c.family, c.runs) for c in configs} == {
        ("ctc", 1000), ("cnn_small", 1000), ("ctc_widths", 400)}
    assert {c.runs for c in preset_configs("default", {"runs": 7})} == {7}


def test_generated_zoo_has_typed_hyperparameters_and_every_checkpoint(tmp_path):
    paths = tiny(tmp_path)
    assert list(paths) == ["ci-digits-ctc"]
    zoo = Zoo.open(paths["ci-digits-ctc"], verify=True)
    t = zoo.table
    assert len(t) == 6 * 3 and t["run_id"].nunique() == 6
    assert t.groupby("run_id")["epoch"].apply(list).map(tuple).unique().tolist() == [(0, 1, 2)]
    assert (t["dataset"] == "digits").all() and zoo.architectures["ctc"].n_params == 4970
    for col, kind in {"hp_optimizer": "O", "hp_activation": "O", "hp_w_init": "O",
                      "hp_learning_rate": "f", "hp_l2reg": "f", "hp_init_std": "f",
                      "hp_dropout": "f", "hp_train_fraction": "f", "hp_seed": "i"}.items():
        assert t[col].dtype.kind == kind, col
    assert set(t["hp_optimizer"]) <= {"sgd", "adam", "rmsprop"}
    assert set(t["hp_train_fraction"]) <= {0.1, 0.25, 0.5, 1.0}
    for col in ("test_accuracy", "train_accuracy", "test_loss", "train_loss"):
        assert t[col].notna().all()
    assert zoo.manifest["source"]["kind"] == "generated"
    assert zoo.manifest["source"]["dataset_sha256"] == load_dataset("digits").sha256()
    assert not work_dir(zoo.path).exists()


def test_recorded_test_accuracy_is_reproduced_by_the_stored_networks(tmp_path):
    # trained in this process, so the forward passes below use the very kernels training used
    zoo = Zoo.open(tiny(tmp_path, overrides={"runs": 10}, isolate=False)["ci-digits-ctc"])
    data = load_dataset("digits")
    x = torch.from_numpy(np.array(data.x_test))
    for i in range(len(zoo)):
        with torch.no_grad():
            got = accuracy(zoo.module(i)(x), data.y_test)
        assert got == zoo.table["test_accuracy"].iat[i], zoo.table["run_id"].iat[i]


def test_same_seed_same_bytes_other_seed_other_zoo(tmp_path):
    a = tiny(tmp_path, "a")["ci-digits-ctc"]
    b = tiny(tmp_path, "b")["ci-digits-ctc"]
    c = tiny(tmp_path, "c", overrides={"seed": 1})["ci-digits-ctc"]
    assert weights_sha(a) == weights_sha(b)
    pd.testing.assert_frame_equal(Zoo.open(a).table, Zoo.open(b).table)
    assert weights_sha(a) != weights_sha(c)


def test_worker_processes_make_the_same_zoo_as_one_process(tmp_path):
    one = tiny(tmp_path, "one")["ci-digits-ctc"]
    two = tiny(tmp_path, "two", workers=2)["ci-digits-ctc"]
    assert weights_sha(one) == weights_sha(two)


def test_interrupted_generation_resumes_to_the_same_zoo(tmp_path, monkeypatch):
    whole = tiny(tmp_path, "whole", isolate=False)["ci-digits-ctc"]
    train, calls = population.train_group, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train(*args, **kwargs)

    monkeypatch.setattr(population, "train_group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tiny(tmp_path, "cut", isolate=False)
    out = tmp_path / "cut" / "ci-digits-ctc"
    assert not out.exists()
    assert len(list(work_dir(out).glob("group-*.json"))) == 2

    calls.clear()
    resumed = tiny(tmp_path, "cut", isolate=False)["ci-digits-ctc"]
    groups = len(population.plan_groups(preset_configs("ci", TINY)[0],
                                        population.zoo_runs(preset_configs("ci", TINY)[0])))
    assert len(calls) == groups - 2  # only the unfinished groups were trained
    assert weights_sha(resumed) == weights_sha(whole)
    assert not work_dir(out).exists()


def test_complete_zoos_are_skipped(tmp_path, monkeypatch):
    first = tiny(tmp_path)["ci-digits-ctc"]
    stamp = (first / "manifest.json").stat().st_mtime_ns

    def no_training(*args, **kwargs):
        raise AssertionError("a complete zoo was trained again")

    monkeypatch.setattr(population, "train_group", no_training)
    assert tiny(tmp_path, isolate=False)["ci-digits-ctc"] == first
    assert sorted(p.name for p in tmp_path.joinpath("a").iterdir()) == ["ci-digits-ctc"]
    assert (first / "manifest.json").stat().st_mtime_ns == stamp


def test_a_zoo_from_another_configuration_is_not_silently_replaced(tmp_path):
    tiny(tmp_path)
    with pytest.raises(GenerationError, match="another configuration.*--overwrite"):
        tiny(tmp_path, overrides={"runs": 5})
    redone = tiny(tmp_path, overwrite=True, overrides={"runs": 5})["ci-digits-ctc"]
    assert Zoo.open(redone).table["run_id"].nunique() == 5


def test_mixed_family_holds_one_architecture_per_shape(tmp_path):
    config = ZooConfig(name="m", dataset="digits", family="mixed", runs=12, epochs=1,
                       checkpoints=(0, 1))
    zoo = Zoo.open(generate_zoos([config], [tmp_path / "m"], workers=1, progress=False)["m"])
    archs = zoo.architectures
    assert len(archs) > 1 and {a.family for a in archs.values()} == {"mixed"}
    assert len({a.n_params for a in archs.values()}) == len(archs)
    t = zoo.table
    for name, arch in archs.items():
        rows = t[t["architecture"] == name]
        assert (rows["hp_num_units"] == arch.layers[0].fan_out).all()
        assert (rows["hp_num_layers"] == len(arch.layers) - 1).all()


def test_ctc_widths_runs_draw_their_hidden_width():
    runs = sample_runs(40, "ctc_widths", "digits", seed=0, in_channels=1, size=16)
    widths = {r.arch.layers[0].fan_out for r in runs}
    assert widths == set(CTC_WIDTHS)
    for r in runs:
        units = r.arch.layers[0].fan_out
        assert (r.arch.name, r.arch.family) == (f"ctc_w{units}", "ctc_widths")
        assert r.hp_columns()["hp_num_units"] == units
        ref = ctc(units=units, size=16)
        assert [la.weight_shape for la in r.arch.layers] == [la.weight_shape for la in ref.layers]


def test_accuracy_spread_reports_quantiles_and_diverged_runs(tmp_path):
    zoo = Zoo.open(tiny(tmp_path)["ci-digits-ctc"])
    s = accuracy_spread(zoo)
    assert s["runs"] == 6 and 0 <= s["q0"] <= s["q50"] <= s["q100"] <= 1
    assert s["diverged"] == int(zoo.table.query("epoch == 2")["diverged"].sum())


def test_bad_presets_and_names_are_explained():
    with pytest.raises(PresetError, match="no preset .*Presets:"):
        preset_zoo_names("nightly")
    with pytest.raises(PresetError, match="unknown dataset 'imagenet'"):
        preset_configs("ci", {"datasets": ["imagenet"]})
    with pytest.raises(PresetError, match="cannot override 'lr'"):
        preset_configs("ci", {"lr": 0.1})
    with pytest.raises(PresetError, match="no zoo, dataset or family"):
        generate_preset("ci", only=["ci-cifar-ctc"], progress=False)


def test_cli_generates_and_reports_the_spread(tmp_path):
    args = ["zoo", "generate", "--preset", "ci", "--dataset", "digits", "--family", "ctc",
            "--runs", "4", "--epochs", "1", "--out", str(tmp_path), "--workers", "1",
            "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "ci-digits-ctc" in result.output and "q50" in result.output
    assert Zoo.open(tmp_path / "ci-digits-ctc").table["run_id"].nunique() == 4
    bad = CliRunner().invoke(main, ["zoo", "generate", "--preset", "nope", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "no preset" in bad.output


def test_a_failing_worker_is_reported_with_its_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # each worker runs it as it starts
    (tmp_path / "sitecustomize.py").write_text("raise SystemExit('worker cannot start')\n")
    with pytest.raises(GenerationError, match="(?s)worker failed.*cannot start"):
        tiny(tmp_path, workers=2)


def test_a_device_torch_cannot_see_is_refused_before_any_work(tmp_path):
    with pytest.raises(GenerationError, match="use --device cpu|use cpu"):
        tiny(tmp_path, device="cuda" if not torch.cuda.is_available() else "tpu")
    assert not (tmp_path / "a").exists()


def test_diverged_runs_are_kept_and_flagged(tmp_path):
    space = {"optimizers": ["sgd"], "learning_rate": [1e8, 1e9], "train_fractions": [0.1]}
    zoo = Zoo.open(tiny(tmp_path, overrides={"runs": 3, "space": space})["ci-digits-ctc"],
                   verify=True)
    final = zoo.table[zoo.table["epoch"] == 2]
    assert len(final) == 3 and final["nonfinite"].all() and final["diverged"].all()
    first = zoo.table[zoo.table["epoch"] == 0]
    assert not first["nonfinite"].any() and not first["diverged"].any()


def test_a_zoo_finished_meanwhile_by_another_process_leaves_no_work_folder(tmp_path,
                                                                          monkeypatch):
    done = tiny(tmp_path, "other", isolate=False)["ci-digits-ctc"]
    real = population.work_dir

    def finished_meanwhile(out):  # another process puts the zoo in place before we lock it
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            done.rename(out)
        return real(out)

    monkeypatch.setattr(population, "work_dir", finished_meanwhile)
    out = tiny(tmp_path, isolate=False)["ci-digits-ctc"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ci-digits-ctc"]


def test_a_manifest_that_is_not_an_object_is_a_clear_error(tmp_path):
    out = tmp_path / "a" / "ci-digits-ctc"
    out.mkdir(parents=True)
    (out / "manifest.json").write_text("[]")
    with pytest.raises(ZooFormatError, match="not a zoo-bench manifest"):
        tiny(tmp_path, isolate=False)
