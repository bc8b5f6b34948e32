"""The zoo catalog and ensure_zoo end to end, served from a loopback HTTP server (never beyond)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import socket
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from http_server import serve
from torch import nn

import zoo_bench.catalog as catalog_mod
import zoo_bench.commands.catalog_cmds as cmds
from zoo_bench import Zoo
from zoo_bench.catalog import (
    CatalogEntry,
    CatalogError,
    ensure_zoo,
    get_entry,
    load_catalog,
    zenodo_record,
)
from zoo_bench.cli import main
from zoo_bench.download import HashLock, OfflineError, RetryPolicy
from zoo_bench.errors import DownloadError, ZooImportError
from zoo_bench.extract import DamagedArchiveError

HERE = Path(__file__).resolve().parent
LAYOUT = next(p for p in (HERE / "data" / "ctc" / "layout.csv",
                          HERE.parent.parent / "shared" / "fixtures" / "ctc" / "layout.csv")
              if p.exists())
FAST = RetryPolicy(retries=2, backoff=0.01, timeout=5.0, chunk=4096)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any attempt to resolve a host other than loopback fails the test."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to reach {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


def ctc_archive(n: int = 3, seed: int = 0) -> bytes:
    """A .tar.xz in the exact Small CNN Zoo layout: cifar10/ with the three published files."""
    rng = np.random.default_rng(seed)
    weights = io.BytesIO()
    np.save(weights, rng.normal(0, 0.2, size=(n, 4970)).astype(np.float32))
    metrics = pd.DataFrame({
        "config.activation": ["relu", "tanh", "relu"][:n], "config.dataset": "cifar10",
        "config.learning_rate": rng.uniform(1e-3, 1e-1, n), "config.optimizer": "adam",
        "modeldir": [f"cifar10/run{i}" for i in range(n)], "step": 86,
        "test_accuracy": rng.uniform(0.1, 0.5, n), "test_loss": rng.uniform(1, 2, n),
        "train_accuracy": rng.uniform(0.1, 0.6, n), "train_loss": rng.uniform(1, 2, n),
    })
    gz = io.BytesIO()
    metrics.to_csv(gz, index=False, compression={"method": "gzip", "mtime": 0})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as tar:
        for name, data in (("weights.npy", weights.getvalue()), ("metrics.csv.gz", gz.getvalue()),
                           ("layout.csv", LAYOUT.read_bytes())):
            info = tarfile.TarInfo(f"cifar10/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


ARCHIVE = ctc_archive()
SHA = hashlib.sha256(ARCHIVE).hexdigest()


def ctc_entry(*urls: str, **fields) -> dict[str, CatalogEntry]:
    entry = CatalogEntry(name="ctc-test", importer="ctc", format="tar.xz", urls=urls,
                         licence="CC-BY-4.0", **fields)
    return {entry.name: entry}


def closed_port_url(path: str) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}{path}"


@pytest.fixture
def srv():
    with serve({"/cifar10.tar.xz": ARCHIVE}) as s:
        yield s


# --- the catalog ---------------------------------------------------------------------------


def test_packaged_catalog_lists_every_known_zoo():
    cat = load_catalog()
    ctc = {n: e for n, e in cat.items() if e.importer == "ctc"}
    assert sorted(e.urls[0].rsplit("/", 1)[1] for e in ctc.values()) == [
        "cifar10.tar.xz", "fashion_mnist.tar.xz", "mnist.tar.xz", "svhn_cropped.tar.xz"]
    assert all(e.urls[0].startswith("https://storage.googleapis.com/gresearch/smallcnnzoo-dataset/")
               and e.licence == "CC-BY-4.0" and "Unterthiner" in e.citation for e in ctc.values())
    records = {e.zenodo for e in cat.values() if e.importer == "schurholt"}
    assert records == {6632086, 6632104, 6632120, 6633626, 6620868, 6631783, 6634138, 8141666}
    assert all(e.citation for e in cat.values())


def test_unknown_zoo_lists_the_valid_names_and_suggests_one(tmp_path):
    with pytest.raises(CatalogError) as err:
        ensure_zoo("ctc-cifar", tmp_path)
    assert "did you mean 'ctc-cifar10'?" in str(err.value)
    assert "ctc-mnist" in str(err.value) and "schurholt-mnist-cnn_s" in str(err.value)
    assert not (tmp_path / "downloads").exists()


@pytest.mark.parametrize("body, complaint", [
    ('[z]\nurls = ["https://x/z.tar.xz"]\nimporter = "ctc"\ncolour = 1', "unknown fields"),
    ('[z]\nurls = ["https://x/z.tar.xz"]\nzenodo = 1\nimporter = "ctc"', "exactly one of"),
    ('[z]\nurls = ["https://x/z.tar.xz"]\nimporter = "keras"', "importer 'keras'"),
    ('[z]\nurls = ["https://x/z.tar.xz"]\nimporter = "ctc"\nsha256 = "abc"', "64 hex digits"),
    ('[z]\nurls = ["https://x/z"]\nimporter = "ctc"', "set `format`"),
])
def test_malformed_catalog_entries_are_named(tmp_path, body, complaint):
    path = tmp_path / "catalog.toml"
    path.write_text(body)
    with pytest.raises(CatalogError, match=complaint) as err:
        load_catalog(path)
    assert "zoo 'z'" in str(err.value)


def test_zenodo_record_resolves_to_file_names_sizes_md5s_and_links():
    with serve() as s:
        s.add_json("/api/records/42", {"metadata": {"license": {"id": "cc-by-4.0"}}, "files": [
            {"key": "zoo.zip", "size": 10, "checksum": "md5:" + "a" * 32,
             "links": {"self": "http://127.0.0.1/files/zoo.zip"}}]})
        files, licence = zenodo_record(42, api=s.url("/api"), policy=FAST)
    assert licence == "cc-by-4.0"
    assert [(f.name, f.urls, f.size, f.md5) for f in files] == [
        ("zoo.zip", ("http://127.0.0.1/files/zoo.zip",), 10, "a" * 32)]


def test_missing_zenodo_record_fails_at_once_naming_the_url():
    with serve() as s, pytest.raises(DownloadError, match="/api/records/7 answered HTTP 404"):
        zenodo_record(7, api=s.url("/api"), policy=FAST)


# --- ensure_zoo ----------------------------------------------------------------------------


def test_ensure_zoo_downloads_verifies_unpacks_and_imports_a_small_cnn_zoo(srv, tmp_path, capsys):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    path = ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    assert path == tmp_path / "zoos" / "ctc-test"
    zoo = Zoo.open(path, verify=True)
    assert len(zoo) == 3 and zoo.name == "ctc-test"
    assert zoo.module(0)(torch.randn(1, 1, 32, 32)).shape == (1, 10)
    lock = HashLock(tmp_path / "downloads" / "sha256.lock.json")
    assert lock.get(srv.url("/cifar10.tar.xz")) == SHA
    assert "recorded its sha256" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "downloads" / "ctc-test").iterdir()) == [
        "cifar10.tar.xz"]
    hits = len(srv.hits)
    assert ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False) == path
    assert len(srv.hits) == hits


def test_locked_hash_catches_a_changed_upstream_file(srv, tmp_path):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    for p in (tmp_path / "zoos" / "ctc-test", tmp_path / "downloads" / "ctc-test"):
        shutil.rmtree(p)
    changed = ctc_archive(seed=1)
    srv.route("/cifar10.tar.xz").body = changed
    with pytest.raises(DownloadError) as err:
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    msg = str(err.value)
    assert f"expected sha256 {SHA}, got {hashlib.sha256(changed).hexdigest()}" in msg
    assert "sha256.lock.json" in msg and "cifar10.tar.xz" in msg
    assert list((tmp_path / "downloads" / "ctc-test").iterdir()) == []
    assert not (tmp_path / "zoos" / "ctc-test").exists()


def test_pinned_sha256_is_checked_and_a_mismatch_removes_the_file(srv, tmp_path):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    with pytest.raises(DownloadError, match=f"expected sha256 {'0' * 64}, got {SHA}"):
        ensure_zoo("ctc-test", tmp_path, sha256="0" * 64, catalog=cat, policy=FAST,
                   progress=False)
    assert list((tmp_path / "downloads" / "ctc-test").iterdir()) == []
    ensure_zoo("ctc-test", tmp_path, sha256=SHA.upper(), catalog=cat, policy=FAST, progress=False)
    assert not (tmp_path / "downloads" / "sha256.lock.json").exists()


def test_pin_contradicting_a_published_hash_is_refused(srv, tmp_path):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"), sha256=SHA)
    with pytest.raises(DownloadError, match="contradicts the catalog's published sha256"):
        ensure_zoo("ctc-test", tmp_path, sha256="1" * 64, catalog=cat, policy=FAST)
    assert srv.hits == []


def test_truncated_archive_is_refused_and_nothing_is_half_imported(srv, tmp_path):
    srv.route("/cifar10.tar.xz").body = ARCHIVE[: len(ARCHIVE) // 2]
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    with pytest.raises(DamagedArchiveError, match="truncated or damaged.*it was deleted"):
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    assert list((tmp_path / "downloads" / "ctc-test").iterdir()) == []
    assert not (tmp_path / "zoos").exists() or list((tmp_path / "zoos").iterdir()) == []
    assert HashLock(tmp_path / "downloads" / "sha256.lock.json").read() == {}


def test_offline_machine_is_told_where_to_place_the_archive(tmp_path):
    cat = ctc_entry(closed_port_url("/cifar10.tar.xz"))
    with pytest.raises(OfflineError) as err:
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    msg = str(err.value)
    assert cat["ctc-test"].urls[0] in msg
    assert str(tmp_path / "downloads" / "ctc-test" / "cifar10.tar.xz") in msg
    assert f"zoo-bench zoo import ctc SRC {tmp_path / 'zoos' / 'ctc-test'}" in msg


def test_an_archive_placed_by_hand_is_used_without_the_network(tmp_path):
    cat = ctc_entry(closed_port_url("/cifar10.tar.xz"))
    (tmp_path / "downloads" / "ctc-test").mkdir(parents=True)
    (tmp_path / "downloads" / "ctc-test" / "cifar10.tar.xz").write_bytes(ARCHIVE)
    path = ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    assert len(Zoo.open(path)) == 3
    assert HashLock(tmp_path / "downloads" / "sha256.lock.json").get(cat["ctc-test"].urls[0]) == SHA


def wrong_archive() -> bytes:
    """A sound .tar.xz that is not a Small CNN Zoo: it unpacks, but nothing imports from it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:xz") as tar:
        info = tarfile.TarInfo("cifar10/readme.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return out.getvalue()


def place(tmp_path, body: bytes) -> Path:
    dest = tmp_path / "downloads" / "ctc-test" / "cifar10.tar.xz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(body)
    return dest


def test_a_wrong_archive_placed_by_hand_records_no_hash_and_is_kept(tmp_path):
    cat = ctc_entry(closed_port_url("/cifar10.tar.xz"))
    lock = HashLock(tmp_path / "downloads" / "sha256.lock.json")
    dest = place(tmp_path, wrong_archive())
    with pytest.raises(ZooImportError, match="kept as you placed them and no hash was recorded"):
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    assert lock.read() == {}  # the lock is not poisoned by a file that did not import
    assert dest.read_bytes() == wrong_archive()  # the user's file is still there
    place(tmp_path, ARCHIVE)  # the right archive is then accepted, and only now locked
    path = ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    assert len(Zoo.open(path)) == 3
    assert lock.get(cat["ctc-test"].urls[0]) == SHA


def test_a_placed_archive_that_does_not_verify_is_moved_aside_not_deleted(tmp_path):
    cat = ctc_entry(closed_port_url("/cifar10.tar.xz"))
    HashLock(tmp_path / "downloads" / "sha256.lock.json").record(
        cat["ctc-test"].urls[0], "0" * 64, 1, "ctc-test")
    dest = place(tmp_path, ARCHIVE)
    with pytest.raises(DownloadError) as err:
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    aside = list((dest.parent / "rejected").iterdir())
    assert len(aside) == 1 and aside[0].read_bytes() == ARCHIVE and not dest.exists()
    assert f"moved aside to {aside[0]}" in str(err.value)
    assert "delete its entry" in str(err.value)  # how to fix a wrong lock entry


def test_a_damaged_archive_placed_by_hand_is_moved_aside_not_deleted(tmp_path):
    cat = ctc_entry(closed_port_url("/cifar10.tar.xz"))
    dest = place(tmp_path, ARCHIVE[: len(ARCHIVE) // 2])
    with pytest.raises(DamagedArchiveError, match="moved aside to .*rejected"):
        ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    aside = list((dest.parent / "rejected").iterdir())
    assert [p.read_bytes() for p in aside] == [ARCHIVE[: len(ARCHIVE) // 2]]
    assert HashLock(tmp_path / "downloads" / "sha256.lock.json").read() == {}


def test_a_damaged_zoo_folder_is_rebuilt(srv, tmp_path):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    path = ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False)
    (path / "manifest.json").write_text("{")
    assert ensure_zoo("ctc-test", tmp_path, catalog=cat, policy=FAST, progress=False) == path
    assert len(Zoo.open(path)) == 3


def zenodo_catalog(record: int, importer: str = "ctc") -> dict[str, CatalogEntry]:
    entry = CatalogEntry(name="zenodo-test", importer=importer, format="auto", zenodo=record)
    return {entry.name: entry}


def zenodo_json(srv, files: dict[str, bytes]) -> dict:
    return {"metadata": {"license": {"id": "cc-by-4.0"}}, "files": [
        {"key": k, "size": len(v), "checksum": "md5:" + hashlib.md5(v).hexdigest(),
         "links": {"self": srv.url(f"/files/{k}")}} for k, v in files.items()]}


def test_zenodo_zoo_end_to_end_then_offline_from_the_kept_record(srv, tmp_path):
    files = {"cifar10.tar.xz": ARCHIVE, "README.md": b"# the zoo"}
    for k, v in files.items():
        srv.add(f"/files/{k}", v)
    srv.add_json("/api/records/99", zenodo_json(srv, files))
    cat = zenodo_catalog(99)
    path = ensure_zoo("zenodo-test", tmp_path, catalog=cat, policy=FAST, progress=False,
                      zenodo_api=srv.url("/api"))
    assert len(Zoo.open(path)) == 3
    assert srv.gets("/files/README.md") == []
    folder = tmp_path / "downloads" / "zenodo-test"
    assert sorted(p.name for p in folder.iterdir()) == ["cifar10.tar.xz", "record.json"]
    shutil.rmtree(path)
    again = ensure_zoo("zenodo-test", tmp_path, catalog=cat, policy=FAST, progress=False,
                       zenodo_api=closed_port_url("/api"))
    assert len(Zoo.open(again)) == 3


def test_zenodo_md5_mismatch_is_an_error(srv, tmp_path):
    record = zenodo_json(srv, {"cifar10.tar.xz": ARCHIVE})
    record["files"][0]["checksum"] = "md5:" + "0" * 32
    srv.add("/files/cifar10.tar.xz", ARCHIVE)
    srv.add_json("/api/records/5", record)
    with pytest.raises(DownloadError, match=f"expected md5 {'0' * 32}, got "):
        ensure_zoo("zenodo-test", tmp_path, catalog=zenodo_catalog(5), policy=FAST,
                   progress=False, zenodo_api=srv.url("/api"))


def test_zenodo_offline_without_a_kept_record_says_what_to_do(tmp_path):
    with pytest.raises(OfflineError) as err:
        ensure_zoo("zenodo-test", tmp_path, catalog=zenodo_catalog(3), policy=FAST,
                   progress=False, zenodo_api=closed_port_url("/api"))
    assert "Zenodo record 3" in str(err.value)
    assert str(tmp_path / "downloads" / "zenodo-test") in str(err.value)


class CnnS(nn.Module):
    """Schürholt et al.'s CNN-s as their code builds it (conv, max-pool, activation)."""

    def __init__(self):
        super().__init__()
        self.module_list = nn.ModuleList([
            nn.Conv2d(1, 8, 5), nn.MaxPool2d(2, 2), nn.Tanh(),
            nn.Conv2d(8, 6, 5), nn.MaxPool2d(2, 2), nn.Tanh(),
            nn.Conv2d(6, 4, 2), nn.Tanh(), nn.Flatten(),
            nn.Linear(36, 20), nn.Tanh(), nn.Linear(20, 10),
        ])

    def forward(self, x):
        for layer in self.module_list:
            x = layer(x)
        return x


def schurholt_zip() -> tuple[bytes, CnnS]:
    """A zip in the Model Zoos layout: zoo/<model>/result.json and checkpoint_*/checkpoints."""
    torch.manual_seed(0)
    net = CnnS().eval()
    state = io.BytesIO()
    torch.save(net.state_dict(), state)
    config = {"model::nlin": "tanh", "model::dropout": 0.0, "optim::lr": 1e-3,
              "optim::optimizer": "adam", "dataset::dump": "/zoos/MNIST/dataset.pt"}
    results = "".join(json.dumps({"test_acc": 0.5 + e / 10, "train_acc": 0.6 + e / 10,
                                  "training_iteration": e, "config": config}) + "\n"
                      for e in range(2))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("mnist_zoo/NN_tune_trainable_00000_seed=1/result.json", results)
        zf.writestr("mnist_zoo/NN_tune_trainable_00000_seed=1/checkpoint_000001/checkpoints",
                    state.getvalue())
    return out.getvalue(), net


def test_schurholt_zoo_from_a_zenodo_zip_runs_like_their_network(srv, tmp_path):
    data, net = schurholt_zip()
    srv.add("/files/mnist_zoo.zip", data)
    srv.add_json("/api/records/6632086", zenodo_json(srv, {"mnist_zoo.zip": data}))
    path = ensure_zoo("zenodo-test", tmp_path, catalog=zenodo_catalog(6632086, "schurholt"),
                      policy=FAST, progress=False, zenodo_api=srv.url("/api"))
    zoo = Zoo.open(path)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(zoo.module(0)(x), net(x), rtol=1e-5, atol=1e-6)


# --- the commands --------------------------------------------------------------------------


@pytest.fixture
def cli_catalog(srv, monkeypatch):
    cat = ctc_entry(srv.url("/cifar10.tar.xz"))
    monkeypatch.setattr(catalog_mod, "load_catalog", lambda path=None: cat)
    monkeypatch.setattr(cmds, "load_catalog", lambda path=None: cat)
    return cat


def test_cli_dry_run_download_and_list(cli_catalog, srv, tmp_path):
    runner = CliRunner()
    dry = runner.invoke(main, ["zoo", "download", "ctc-test", "--dir", str(tmp_path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would fetch: {srv.url('/cifar10.tar.xz')}" in dry.output
    assert f"{len(ARCHIVE) / 1000:.1f} kB" in dry.output
    assert not (tmp_path / "downloads" / "ctc-test").exists()
    listed = runner.invoke(main, ["zoo", "list", "--dir", str(tmp_path)])
    assert "ctc-test" in listed.output and "ready" not in listed.output
    got = runner.invoke(main, ["zoo", "download", "ctc-test", "--dir", str(tmp_path)])
    assert got.exit_code == 0, got.output
    assert f"zoo ctc-test is ready at {tmp_path / 'zoos' / 'ctc-test'}" in got.output
    assert "ready" in runner.invoke(main, ["zoo", "list", "--dir", str(tmp_path)]).output
    again = runner.invoke(main, ["zoo", "download", "ctc-test", "--dir", str(tmp_path),
                                 "--dry-run"])
    assert "already in the cache" in again.output


def test_cli_errors_are_one_clear_line(cli_catalog, tmp_path):
    res = CliRunner().invoke(main, ["zoo", "download", "ctc-tset", "--dir", str(tmp_path)])
    assert res.exit_code == 1
    assert "Error: unknown zoo 'ctc-tset'; did you mean 'ctc-test'?" in res.output
    assert "Traceback" not in res.output


def test_get_entry_accepts_a_known_name():
    assert get_entry("ctc-cifar10").urls[0].endswith("/cifar10.tar.xz")


def test_cli_dry_run_of_a_zenodo_zoo_offline_says_what_it_knows(tmp_path, monkeypatch):
    cat = zenodo_catalog(7)
    monkeypatch.setattr(catalog_mod, "load_catalog", lambda path=None: cat)
    monkeypatch.setenv("ZOO_BENCH_ZENODO_API", closed_port_url("/api"))
    res = CliRunner().invoke(main, ["zoo", "download", "zenodo-test", "--dir", str(tmp_path),
                                    "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "offline: the file list of zoo zenodo-test is not known here" in res.output
    assert "Zenodo record 7" in res.output
    assert f"{tmp_path / 'downloads' / 'zenodo-test'}/" in res.output
    assert str(tmp_path / "zoos" / "zenodo-test") in res.output
    assert not (tmp_path / "downloads").exists()


def test_cli_list_shows_generated_zoos_in_the_cache(cli_catalog, tmp_path):
    from zoo_bench import ZooWriter
    from zoo_bench.families import ctc

    arch = ctc(size=16)
    with ZooWriter(tmp_path / "zoos" / "ci-digits-ctc", "ci-digits-ctc", [arch],
                   {"kind": "generated", "preset": "ci"}) as w:
        w.add_many(arch.name, np.zeros((2, arch.n_params), np.float32), [
            dict(run_id=f"r{i}", dataset="digits", epoch=1, hp_activation="relu",
                 test_accuracy=0.5) for i in range(2)])
    (tmp_path / "zoos" / "broken").mkdir()
    listed = CliRunner().invoke(main, ["zoo", "list", "--dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "Other zoos in the cache" in listed.output
    line = next(x for x in listed.output.splitlines() if "ci-digits-ctc" in x)
    assert "generated (preset ci)" in line and "ready" in line and " 2 " in line
    assert "damaged" in next(x for x in listed.output.splitlines() if "broken" in x)
