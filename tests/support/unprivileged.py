"""Run imgret as a user who cannot write what a test made read-only.

Root ignores file permissions, so a read-only index is only read-only to someone else: as
root the command runs as ``nobody`` (setpriv), in a folder ``nobody`` may enter.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.shared_data import REPO

NOBODY = 65534


@contextmanager
def open_folder() -> Iterator[Path]:
    """A temporary folder every user may enter (pytest's tmp_path is its owner's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="imgret-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(folder, ignore_errors=True)


def make_read_only(path: Path) -> None:
    """Take away every write permission below ``path`` (folders stay enterable)."""
    for item in [*path.rglob("*"), path]:
        item.chmod(item.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def can_drop_privileges() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def run_imgret(*argv: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``imgret ARGV`` in a fresh process, as a user without write access to the test's files."""
    command = [sys.executable, "-m", "imgret.cli", *argv]
    if os.geteuid() == 0:
        command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command]
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=home, timeout=300)
