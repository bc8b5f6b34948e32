#!/usr/bin/env python3
"""Render leaderboard.html in headless Chromium and check it really rendered.

Takes a screenshot (PNG) and dumps the DOM, then checks: the PNG exists and is not blank, and
the DOM holds the leaderboard tables and the embedded figures. Exit 0 if all is well, 1 with the
reasons if not, 2 if no Chromium is installed. No network: the page is a local file with
everything inline, and Chromium's background traffic is switched off.

    .venv/bin/python scripts/screenshot_leaderboard.py results/default/leaderboard.html \
        --png shot.png
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.image import imread

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)
MIN_TABLES = 2
MIN_IMAGES = 1
MIN_INK = 0.01


def find_browser() -> str | None:
    """Path of an installed Chromium (or Chrome), or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _chromium(browser: str, url: str, *extra: str, timeout: float = 120) -> str:
    with tempfile.TemporaryDirectory(prefix="zoo-bench-chromium-") as profile:
        out = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True, text=True, timeout=timeout,
        )
    if out.returncode != 0:
        raise RuntimeError(f"{browser} exited with {out.returncode}: {out.stderr[-2000:]}")
    return out.stdout


def ink_fraction(png: Path) -> float:
    """Share of pixels that differ visibly from the page background (the top-left pixel)."""
    img = imread(png)[..., :3].astype(np.float64)
    background = img[0, 0]
    return float((np.abs(img - background).max(axis=-1) > 0.1).mean())


def check_page(html: Path, png: Path, browser: str, window: str = "1280,2000") -> list[str]:
    """Screenshot and DOM-dump `html`; return the problems found (empty list: it rendered)."""
    url = html.resolve().as_uri()
    problems = []
    png.unlink(missing_ok=True)
    _chromium(browser, url, f"--screenshot={png.resolve()}", f"--window-size={window}")
    if not png.exists() or png.stat().st_size == 0:
        problems.append(f"no screenshot was written to {png}")
    else:
        ink = ink_fraction(png)
        if ink < MIN_INK:
            problems.append(f"the screenshot is blank ({ink:.2%} of pixels are not background)")
    dom = _chromium(browser, url, "--dump-dom")
    tables = len(re.findall(r"<table\b", dom))
    images = len(re.findall(r'<img\b[^>]*src="data:image/png;base64,', dom))
    if tables < MIN_TABLES:
        problems.append(f"the DOM holds {tables} table(s), expected at least {MIN_TABLES}")
    if images < MIN_IMAGES:
        problems.append(f"the DOM holds {images} embedded figure(s), expected {MIN_IMAGES} or more")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the leaderboard.html to render")
    parser.add_argument("--png", type=Path, help="screenshot path (default: beside the HTML)")
    parser.add_argument("--window-size", default="1280,2000")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no Chromium found; install it with `apt-get install -y chromium`", file=sys.stderr)
        return 2
    if not args.html.is_file():
        print(f"{args.html} does not exist; run `zoo-bench leaderboard` first", file=sys.stderr)
        return 1
    png = args.png or args.html.with_suffix(".png")
    problems = check_page(args.html, png, browser, args.window_size)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    if not problems:
        print(f"rendered: {png} ({ink_fraction(png):.1%} ink)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
