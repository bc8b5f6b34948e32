"""Safe extraction: good archives unpack whole; unsafe or damaged ones are refused."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from zoo_bench.errors import UnsafeArchiveError
from zoo_bench.extract import DamagedArchiveError, archive_format, extract


def make_tar(path: Path, members: list[tuple[str, str, object]]) -> Path:
    """Write a tar (compression from the suffix); members are (name, kind, data or link target)."""
    mode = {"tar.xz": "w:xz", "tar.gz": "w:gz", "tar": "w"}[archive_format(path.name)]
    types = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE,
             "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, mode) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = types[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            info.mode = 0o755 if kind == "dir" else 0o644
            tar.addfile(info)
    return path


def make_zip(path: Path, members: list[tuple[str, int, bytes]]) -> Path:
    """Write a zip; members are (name, unix mode incl. file type bits, data)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, mode, data in members:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


GOOD = [
    ("cifar10", "dir", None),
    ("cifar10/weights.npy", "file", b"w" * 100),
    ("cifar10/sub/layout.csv", "file", b"varname\n"),
    ("cifar10/sub/link.csv", "symlink", "layout.csv"),
    ("cifar10/up.csv", "symlink", "sub/../weights.npy"),
]


@pytest.mark.parametrize("suffix", ["tar.xz", "tar.gz", "tar"])
def test_tar_archives_unpack_whole_into_a_fresh_folder(tmp_path, suffix):
    archive = make_tar(tmp_path / f"zoo.{suffix}", GOOD)
    out = extract(archive, tmp_path / "out", progress=False)
    assert (out / "cifar10" / "weights.npy").read_bytes() == b"w" * 100
    assert (out / "cifar10" / "sub" / "link.csv").read_bytes() == b"varname\n"
    assert (out / "cifar10" / "up.csv").read_bytes() == b"w" * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", f"zoo.{suffix}"]


def test_zip_unpacks_whole_and_replaces_an_old_folder(tmp_path):
    archive = make_zip(tmp_path / "zoo.zip", [
        ("models/", stat.S_IFDIR | 0o755, b""),
        ("models/m1/result.json", stat.S_IFREG | 0o644, b"{}"),
    ])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("old")
    out = extract(archive, tmp_path / "out", progress=True)
    assert (out / "models" / "m1" / "result.json").read_text() == "{}"
    assert not (out / "stale.txt").exists()


UNSAFE_TAR = {
    "absolute path": [("/tmp/zoo-bench-evil", "file", b"x")],
    "dotdot": [("../evil", "file", b"x")],
    "inner dotdot": [("a/../../evil", "file", b"x")],
    "symlink absolute": [("link", "symlink", "/etc/passwd")],
    "symlink outside": [("a/link", "symlink", "../../outside")],
    "hardlink outside": [("hard", "hardlink", "../outside")],
    "hardlink absolute": [("hard", "hardlink", "/etc/passwd")],
    "through symlink": [("a", "dir", None), ("l", "symlink", "a"), ("l/evil", "file", b"x")],
    "link through symlink": [("l", "symlink", "."), ("m", "symlink", "l/../x")],
    "char device": [("dev", "chr", None)],
    "block device": [("dev", "blk", None)],
    "fifo": [("pipe", "fifo", None)],
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TAR))
def test_unsafe_tar_members_are_refused_and_nothing_is_left(tmp_path, case):
    members = [("ok.txt", "file", b"fine"), *UNSAFE_TAR[case]]
    archive = make_tar(tmp_path / "evil.tar.gz", members)
    bad = members[-1][0]
    with pytest.raises(UnsafeArchiveError, match=f"refusing to unpack member {bad!r}"):
        extract(archive, tmp_path / "out", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["evil.tar.gz"]
    assert not (tmp_path.parent / "evil").exists()


UNSAFE_ZIP = {
    "absolute path": ("/tmp/zoo-bench-evil", stat.S_IFREG | 0o644, b"x"),
    "dotdot": ("../evil", stat.S_IFREG | 0o644, b"x"),
    "backslash dotdot": ("a\\..\\..\\evil", stat.S_IFREG | 0o644, b"x"),
    "symlink outside": ("link", stat.S_IFLNK | 0o777, b"../../etc/passwd"),
    "symlink absolute": ("link", stat.S_IFLNK | 0o777, b"/etc/passwd"),
    "fifo": ("pipe", stat.S_IFIFO | 0o644, b""),
    "char device": ("dev", stat.S_IFCHR | 0o644, b""),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIP))
def test_unsafe_zip_members_are_refused_and_nothing_is_left(tmp_path, case):
    archive = make_zip(tmp_path / "evil.zip",
                       [("ok.txt", stat.S_IFREG | 0o644, b"fine"), UNSAFE_ZIP[case]])
    with pytest.raises(UnsafeArchiveError, match="refusing to unpack member"):
        extract(archive, tmp_path / "out", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["evil.zip"]


def test_truncated_archive_is_a_clear_error_and_leaves_nothing(tmp_path):
    whole = make_tar(tmp_path / "whole.tar.xz", [("big.bin", "file", bytes(range(256)) * 400)])
    cut = tmp_path / "cut.tar.xz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DamagedArchiveError, match=f"{cut} is truncated or damaged"):
        extract(cut, tmp_path / "out", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.xz", "whole.tar.xz"]


def test_a_web_page_saved_as_an_archive_is_refused(tmp_path):
    page = tmp_path / "zoo.tar.xz"
    page.write_text("<html>Sign in to continue</html>")
    with pytest.raises(DamagedArchiveError, match="not a tar.xz archive"):
        extract(page, tmp_path / "out", progress=False)


def test_archive_format_reads_the_suffix():
    assert archive_format("cifar10.tar.xz") == "tar.xz"
    assert archive_format("ZOO.TGZ") == "tar.gz"
    assert archive_format("models.zip") == "zip"
    assert archive_format("README.md") is None
