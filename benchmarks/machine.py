"""What every benchmark prints first: the command, versions, threads, load and page-cache state.

A figure means little without the conditions it was measured under; a shared 2-core machine
in particular can be several times slower than an idle one. `describe()` gives one block of
lines to print before any result; `page_cache_state(paths)` says whether files are cached.
"""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

import torch


def describe(extra: dict[str, object] | None = None) -> str:
    """Command line, Python / torch versions, CPU, threads and 1/5/15-minute load averages."""
    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0))
    lines = [
        f"command: {shlex.join([sys.executable, *sys.argv])}",
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}, {_cpu_model()}",
        f"cores available: {cores}; torch threads: {torch.get_num_threads()}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        f"load average 1/5/15 min: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        f"({'busy' if load[0] > 0.5 * cores else 'idle'} for {cores} cores)",
    ]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return "\n".join(lines)


def load_now() -> str:
    """The 1-minute load average, for lines printed along a long run."""
    return f"load {os.getloadavg()[0]:.2f}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu unknown"


def page_cache_state(paths: Iterable[Path]) -> str:
    """How much of the files is in the page cache now: `warm` (all), `cold` (none) or a share.

    Asks mincore(2) about a private map of each file; 'unknown' where that is not available.
    """
    import ctypes
    import mmap

    total = cached = 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for path in paths:
            size = Path(path).stat().st_size
            if not size:
                continue
            pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
            vec = (ctypes.c_ubyte * pages)()
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) as m:
                view = ctypes.c_char.from_buffer(m)
                rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size),
                                  vec)
                del view
            if rc != 0:
                return "unknown"
            cached += sum(v & 1 for v in vec)
            total += pages
    except (OSError, AttributeError, ValueError, BufferError):
        return "unknown"
    if not total:
        return "unknown"
    share = cached / total
    if share > 0.99:
        return "warm (all pages cached)"
    if share < 0.01:
        return "cold (no pages cached)"
    return f"{share:.0%} of pages cached"


def drop_from_page_cache(paths: Iterable[Path]) -> None:
    """Ask the kernel to evict the files' clean pages (posix_fadvise DONTNEED), for a cold read."""
    for path in paths:
        with open(path, "rb") as f:
            os.fsync(f.fileno())  # dirty pages cannot be evicted
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
