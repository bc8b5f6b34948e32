"""Where a result came from: package, git commit, torch, device, peak memory and time.

Every result row carries these, so a leaderboard number can be traced to the code and the
machine that produced it.
"""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

import zoo_bench

PACKAGE_DIR = Path(zoo_bench.__file__).resolve().parent


def package_version() -> str:
    """The installed zoo-bench version."""
    return zoo_bench.__version__


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _in_own_checkout() -> bool:
    """True if zoo-bench runs from a git checkout of itself (not a copy inside another repo)."""
    top = _git("rev-parse", "--show-toplevel")
    return top is not None and (Path(top) / "zoo_bench").resolve() == PACKAGE_DIR


def git_commit() -> str:
    """`git rev-parse HEAD` of zoo-bench's own checkout, or "unknown" when not run from one."""
    return (_git("rev-parse", "HEAD") if _in_own_checkout() else None) or "unknown"


def git_dirty() -> bool | None:
    """Whether the checkout has uncommitted changes to tracked files (None outside a checkout)."""
    if not _in_own_checkout():
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)


def describe_device(device: str) -> str:
    """A readable device name, e.g. `cuda:0 (NVIDIA H200)` or `cpu (x86_64)`."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{device} ({platform.machine() or 'unknown'})"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (ru_maxrss; never goes down)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def reset_peak_cuda(device: str) -> None:
    """Start a new CUDA peak-memory window (no-op off CUDA)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_cuda_mb(device: str) -> float | None:
    """Peak CUDA memory allocated since the last reset, in MiB; None off CUDA."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return None


def now() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RunProvenance:
    """The facts shared by every cell of one `zoo-bench run` invocation."""

    run_id: str
    zoo_bench_version: str
    git_commit: str
    git_dirty: bool | None
    torch_version: str
    python_version: str
    device: str

    @classmethod
    def collect(cls, device: str) -> RunProvenance:
        """Snapshot the package, checkout, torch and device once at the start of a run."""
        return cls(
            run_id=uuid.uuid4().hex[:12],
            zoo_bench_version=package_version(),
            git_commit=git_commit(),
            git_dirty=git_dirty(),
            torch_version=torch.__version__,
            python_version=platform.python_version(),
            device=describe_device(device),
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
