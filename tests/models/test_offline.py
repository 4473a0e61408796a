"""No network and HF_HUB_OFFLINE unset (a laptop on a plane): imgret finds out once, in a
second or two, that the hub cannot be reached, says so in one line and works offline — a
model in the hub cache loads at once, a missing one fails in seconds naming its files."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

from tests.support.shared_data import REPO

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SCRIPT = """
import json, sys, time
from imgret.config import Config
from imgret.errors import ModelUnavailableError
from imgret.models.topics import TopicModel

config = Config(captioner=None, detector=None, embedder="minilm", device="cpu")
TopicModel(sys.argv[1], config)  # the same files as a folder: imports warm, no hub asked
started = time.perf_counter()
TopicModel("imgret-test/tiny-topics", config)
cached = time.perf_counter() - started
started = time.perf_counter()
try:
    TopicModel("imgret-test/not-downloaded", config)
    message = None
except ModelUnavailableError as exc:
    message = str(exc)
missing = time.perf_counter() - started
print(json.dumps({"cached": cached, "missing": missing, "message": message}))
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hub_cache(home, model_folder) -> None:
    """``model_folder`` as the hub's cache keeps a downloaded imgret-test/tiny-topics."""
    repo = home / "hub" / "models--imgret-test--tiny-topics"
    shutil.copytree(model_folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_an_unreachable_hub_is_found_out_once_and_the_run_goes_offline(tiny_models, tmp_path):
    _hub_cache(tmp_path / "hf", tiny_models["topics"])
    env = {
        k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
    }
    env |= {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_models["topics"])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    said = [line for line in result.stderr.splitlines() if "cannot be reached" in line]
    assert len(said) == 1 and "working offline" in said[0], result.stderr
    assert outcome["cached"] < 5, outcome  # seconds on a busy 2-core machine; was minutes
    assert outcome["missing"] < 5, outcome
    assert "imgret-test/not-downloaded" in outcome["message"]
    assert "config.json" in outcome["message"] and "could not be reached" in outcome["message"]
