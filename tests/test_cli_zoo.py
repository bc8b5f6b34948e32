"""`zoo-bench zoo info` and `zoo-bench zoo import` as a user calls them."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from test_importers import ctc_data, write_ctc_source, write_schurholt_source

from zoo_bench import Zoo
from zoo_bench.cli import main
from zoo_bench.store import WEIGHTS


def run(*args: str):
    return CliRunner().invoke(main, ["zoo", *args])


def test_info_shows_counts_architectures_and_properties(make_zoo):
    zoo = make_zoo(runs=3, epochs=(0, 2))
    result = run("info", str(zoo.path))
    assert result.exit_code == 0, result.output
    for text in ("zoo toy", "networks", "│ 6 ", "runs", "│ 3 ", "0, 2", "4,970", "1x16x16",
                 "test_accuracy", "generalization_gap", "hp_learning_rate", "no (--verify)"):
        assert text in result.output, text


def test_info_finds_a_zoo_by_name_in_the_cache(make_zoo, tmp_path, monkeypatch):
    zoo = make_zoo(name="named")
    monkeypatch.setenv("ZOO_BENCH_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "zoos").mkdir(parents=True)
    zoo.path.rename(tmp_path / "home" / "zoos" / "named")
    result = run("info", "named", "--verify")
    assert result.exit_code == 0, result.output
    assert "zoo named" in result.output and "yes: sha256" in result.output


def test_info_reports_damage_and_unknown_zoos(make_zoo):
    zoo = make_zoo()
    data = bytearray((zoo.path / WEIGHTS).read_bytes())
    data[10] ^= 0xFF
    (zoo.path / WEIGHTS).write_bytes(bytes(data))
    assert run("info", str(zoo.path)).exit_code == 0
    result = run("info", str(zoo.path), "--verify")
    assert result.exit_code == 1 and "sha256 differs" in result.output
    result = run("info", "no-such-zoo")
    assert result.exit_code == 1 and "none named 'no-such-zoo'" in result.output


def test_import_ctc(tmp_path):
    network = np.load(ctc_data() / "cifar10_gs_network.npy")
    src = write_ctc_source(tmp_path / "src", np.stack([network] * 4), ["relu", "tanh"])
    out = tmp_path / "zoos" / "ctc-cifar10"
    result = run("import", "ctc", str(src), str(out))
    assert result.exit_code == 0, result.output
    assert "imported ctc-cifar10: 4 networks" in result.output
    assert Zoo.open(out, verify=True).table["hp_activation"].tolist() == ["relu", "tanh"] * 2
    result = run("import", "ctc", str(src), str(out))
    assert result.exit_code == 1 and "--overwrite" in result.output
    result = run("import", "ctc", str(src), str(out), "--overwrite", "--name", "renamed")
    assert result.exit_code == 0 and Zoo.open(out).name == "renamed"


def test_import_schurholt_and_bad_sources(tmp_path):
    write_schurholt_source(tmp_path / "src")
    result = run("import", "schurholt", str(tmp_path / "src"), str(tmp_path / "z"))
    assert result.exit_code == 0, result.output
    assert len(Zoo.open(tmp_path / "z")) == 6
    result = run("import", "ctc", str(tmp_path / "src"), str(tmp_path / "y"))
    assert result.exit_code == 1 and "lacks ['weights.npy'" in result.output
    assert not (tmp_path / "y").exists()
    result = run("import", "pickles", str(tmp_path / "src"), str(tmp_path / "y"))
    assert result.exit_code == 2 and "Known importers: ctc, schurholt" in result.output
    result = run("import", "schurhlot", str(tmp_path / "src"), str(tmp_path / "y"))
    assert result.exit_code == 2 and "did you mean 'schurholt'" in result.output


def test_info_counts_nonfinite_weights_from_the_data_not_only_the_flags(make_zoo):
    zoo = make_zoo()
    with open(zoo.path / WEIGHTS, "r+b") as f:  # NaN of the right size, flag not set
        f.seek(int(zoo.table["weight_offset"].iat[2]) * 4 + 8)
        f.write(np.float32(np.nan).tobytes())
    result = run("info", str(zoo.path))
    assert result.exit_code == 0, result.output
    assert "1 (counted in the weights)" in result.output
    assert "the table flags 0" in result.output and "--verify" in result.output
