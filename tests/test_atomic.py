"""`zoo_bench.atomic`: a reader sees the old file or the whole new one, and an error leaves
neither a half-written target nor a temporary file."""

from __future__ import annotations

import signal
import subprocess
import sys

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


SIGTERM_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from zoo_bench.atomic import write_text_atomic, replace_atomic
from zoo_bench.cli import exit_cleanly_on_sigterm

target = Path(sys.argv[1])
write_text_atomic(target, "old")
exit_cleanly_on_sigterm()

def write(f):
    f.write(b"half")
    os.kill(os.getpid(), signal.SIGTERM)  # delivered before the next bytecode: mid-write
    f.write(b", never")

replace_atomic(target, write)
"""


def test_sigterm_mid_write_exits_143_and_leaves_no_temporary_file(tmp_path):
    """`kill` on a `zoo-bench` process unwinds like Ctrl-C: the old file stays, no .tmp."""
    target = tmp_path / "cell.json"
    done = subprocess.run([sys.executable, "-c", SIGTERM_MID_WRITE, str(target)])
    assert done.returncode == 128 + signal.SIGTERM
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.json"]
