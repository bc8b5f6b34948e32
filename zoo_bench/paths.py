"""Where zoo-bench keeps zoos, downloads and splits: `ZOO_BENCH_HOME`, else the user cache."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path:
    """Root of zoo-bench's cache: `$ZOO_BENCH_HOME` if set, else the platform's user cache."""
    env = os.environ.get("ZOO_BENCH_HOME")
    return Path(env) if env else Path(platformdirs.user_cache_dir("zoo-bench"))


def zoos_dir() -> Path:
    """Folder holding one canonical zoo folder per zoo name."""
    return home() / "zoos"


def zoo_path(name: str) -> Path:
    """The canonical folder of the zoo called `name` in the cache."""
    return zoos_dir() / name
