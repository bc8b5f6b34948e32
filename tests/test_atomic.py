"""`zoo_bench.atomic`: a reader sees the old file or the whole new one, and an error leaves
neither a half-written target nor a temporary file."""

from __future__ import annotations

import pytest

from zoo_bench.atomic import replace_atomic, write_text_atomic


def test_the_target_keeps_its_old_content_while_the_new_one_is_written(tmp_path):
    target = tmp_path / "cell.json"
    target.write_text("old")
    seen = []

    def write(f):
        f.write(b"new, first half")
        seen.append(target.read_text())  # what a reader sees mid-write
        f.write(b", second half")

    replace_atomic(target, write)
    assert seen == ["old"]
    assert target.read_text() == "new, first half, second half"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_error_mid_write_leaves_the_old_file_and_no_temporary_file(tmp_path, error):
    target = tmp_path / "cell.json"
    write_text_atomic(target, "old")

    def write(f):
        f.write(b"half")
        raise error

    with pytest.raises(type(error)):
        replace_atomic(target, write)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]


def test_an_error_on_a_new_file_leaves_nothing(tmp_path):
    def write(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_atomic(tmp_path / "sub" / "new.json", write)
    assert list((tmp_path / "sub").iterdir()) == []
