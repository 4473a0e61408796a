"""A build killed with SIGKILL between committed batches, for the resume tests.

The child process runs ``script`` after :data:`SLOW_WRITER`, which makes every commit wait a
moment, so the parent can count committed rows and kill the child while it still has work.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from imgret.index.store import DB_NAME
from tests.support.shared_data import REPO

SLOW_WRITER = """
import sys, time
import torch
from imgret.index.store import Store

upsert = Store.upsert


def slow_upsert(self, rows):
    upsert(self, rows)
    time.sleep(0.5)  # leaves time to kill the process between committed batches


Store.upsert = slow_upsert
"""


def committed_rows(index: Path) -> int:
    """Rows an index holds, read without taking any lock (0 before it exists)."""
    try:
        with sqlite3.connect(f"file:{index / DB_NAME}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def kill_mid_build(
    script: str, args: Sequence[str], index: Path, rows: int = 2, timeout: float = 120
) -> None:
    """Run ``script`` (after the slow writer) with ``args`` and SIGKILL it once ``index``
    holds ``rows`` rows; fail if it ended first."""
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER + script, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + timeout
        while committed_rows(index) < rows and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, "the build ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
