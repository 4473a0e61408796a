"""The Ray engine on a local Ray (2 CPUs, no dashboard, a small object store), tiny models.

One Ray session serves the module. Each build here starts its stage actors afresh (they
import the model libraries and load their model), so the tests are few and each covers a lot.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from imgret.cli import main
from imgret.config import Config
from imgret.errors import MissingPackageError
from imgret.index import engines
from imgret.index.build import build_index
from imgret.index.store import Store
from tests.support.killed_build import committed_rows, kill_mid_build
from tests.support.ray_faults import make_poison, poisoned
from tests.support.shared_data import REPO

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'imgret[ray]'")
from imgret.index.ray_engine import RayEngine  # noqa: E402


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray of 2 CPUs whose workers fail on the poison image size."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=160 * 2**20,
        logging_level="warning",
        runtime_env={
            "worker_process_setup_hook": "tests.support.ray_faults.fail_on_poison",
            "env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
        },
    )
    yield ray
    ray.shutdown()


def _rows(index: Path) -> dict:
    with Store.open(index) as store:
        return {row.path: row for row in store.rows()}


def _add_bad_files(gallery: Path) -> None:
    (gallery / "empty.jpg").write_bytes(b"")
    (gallery / "text.jpg").write_text("this is not a picture\n")
    make_poison(gallery / "sub" / "poison.png")


def test_same_rows_and_the_same_files_left_out(
    ray_session, tiny_config, small_gallery, tmp_path, monkeypatch
):
    """Every vision stage (captioner, detector, tagger) in its own actor pool; their default
    one CPU each is scaled down to fit the 2 CPUs beside the decode tasks."""
    from tests.support.tiny_taggers import build_tiny_vit

    config = dataclasses.replace(
        tiny_config, tagger=str(build_tiny_vit(tmp_path / "vit")), tagger_min_score=0.0
    )
    _add_bad_files(small_gallery)
    with monkeypatch.context() as patch:
        patch.setattr(engines, "run_stage", poisoned(engines.run_stage))
        here = build_index(small_gallery, tmp_path / "here", config, progress=False)
    there = build_index(small_gallery, tmp_path / "ray", config, progress=False, engine=RayEngine())
    assert (there.total, there.new) == (here.total, here.new) == (9, 6)
    assert sorted(dict(there.skipped)) == sorted(dict(here.skipped))
    assert sorted(dict(there.skipped)) == ["empty.jpg", "sub/poison.png", "text.jpg"]
    reasons = dict(there.skipped)
    assert "empty" in reasons["empty.jpg"] and "not an image" in reasons["text.jpg"]
    assert reasons["sub/poison.png"] == dict(here.skipped)["sub/poison.png"]
    assert "RuntimeError: this model cannot take a 97x89 image" in reasons["sub/poison.png"]

    a, b = _rows(tmp_path / "here"), _rows(tmp_path / "ray")
    assert a.keys() == b.keys() and len(a) == 6
    for path, row in a.items():
        other = b[path]
        assert row.tags and row.caption and row.counts
        same = ("caption", "counts", "tags", "text_in_image", "description", "topics", "sha256")
        for name in (*same, "width", "height", "vision_key", "tagger_key", "text_key"):
            assert getattr(other, name) == getattr(row, name), (path, name)
        np.testing.assert_allclose(other.vector, row.vector, atol=1e-5)
    with Store.open(tmp_path / "here") as x, Store.open(tmp_path / "ray") as y:
        assert x.meta()["stages"] == y.meta()["stages"]
        # unreadable files are remembered; a file a stage failed on is retried next time
        assert sorted(x.skipped()) == sorted(y.skipped()) == ["empty.jpg", "text.jpg"]


def test_requests_larger_than_the_cluster_are_scaled_to_fit():
    stages = ["captioner", "detector", "tagger"]
    assert RayEngine().fit(2.0, stages) == ({s: 0.5 for s in stages}, 0.5)
    assert RayEngine().fit(64.0, stages) == ({s: 1.0 for s in stages}, 1.0)
    wide = RayEngine(num_cpus={"captioner": 2.0}, actors={"captioner": 3})
    assert wide.fit(4.5, stages) == ({"captioner": 1.0, "detector": 0.5, "tagger": 0.5}, 0.5)
    with pytest.raises(ValueError, match="at least one actor"):
        RayEngine(actors=0)


def _stage_actors() -> list:
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "_StageActor" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_an_actor_killed_mid_run_still_finishes_every_image(
    ray_session, tiny_models, small_gallery, tmp_path
):
    from tests.support.galleries import coco_images

    for image in coco_images(10, fallback=True)[4:]:
        (small_gallery / image.name).write_bytes(image.read_bytes())
    total = len(list(small_gallery.rglob("*.jpg")))
    config = dataclasses.replace(
        _captioner_only(tiny_models), batch_size=1, caption_max_length=40, caption_num_beams=4
    )
    index = tmp_path / "index"
    killed: list[int] = []

    def kill_once_working() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if committed_rows(index) >= 1:
                for actor in _stage_actors():
                    actor.send_signal(signal.SIGKILL)
                    killed.append(actor.pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_once_working)
    watcher.start()
    report = build_index(small_gallery, index, config, progress=False, engine=RayEngine())
    watcher.join()
    assert killed, "the build ended before an actor could be killed"
    assert (report.new, report.skipped) == (total, [])
    assert len(_rows(index)) == total


def _captioner_only(tiny_models) -> Config:
    return Config(
        captioner=str(tiny_models["captioner"]),
        detector=None,
        topics=None,
        embedder=str(tiny_models["embedder"]),
        device="cpu",
        caption_max_length=8,
    )


_CLI = """
from imgret.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_the_driver_is_killed(ray_session, tiny_models, small_gallery, tmp_path):
    """The driver joins the module's Ray by its address through the CLI (no vision model: the
    decode tasks run on Ray, the embedder in the driver) and is killed between batches."""
    index = tmp_path / "index"
    args = ["index", str(small_gallery), "--index", str(index), "--quiet", "--batch-size", "1"]
    args += ["--captioner", "none", "--detector", "none", "--topics", "none"]
    args += ["--embedder", str(tiny_models["embedder"]), "--device", "cpu"]
    address = ray.get_runtime_context().gcs_address
    kill_mid_build(_CLI, [*args, "--ray", address], index, timeout=180)
    kept = len(_rows(index))
    assert 2 <= kept < 6
    with Store.open(index) as store:
        stored = store.config()
    assert stored is not None and stored.embedder == str(tiny_models["embedder"])
    report = build_index(small_gallery, index, stored, progress=False)  # in-process this time
    assert (report.new, report.unchanged) == (6 - kept, kept)
    assert len(_rows(index)) == 6


def test_without_ray_the_message_names_the_extra(small_gallery, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingPackageError, match=r"imgret\[ray\]"):
        RayEngine()
    code = main(["index", str(small_gallery), "--index", str(tmp_path / "i"), "--ray"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("imgret: --ray needs Ray Data") and "pip install 'imgret[ray]'" in err
    assert not (tmp_path / "i").exists()


def test_eval_runs_its_vision_pass_on_ray(ray_session, tiny_models, tmp_path, monkeypatch, capsys):
    from tests.support.galleries import coco_images

    photos = coco_images(4)
    (tmp_path / "images").mkdir()
    for photo in photos:
        (tmp_path / "images" / photo.name).symlink_to(photo)
    annotations = tmp_path / "images" / "captions.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": i, "file_name": p.name} for i, p in enumerate(photos)],
                "annotations": [
                    {"id": 10 * i + j, "image_id": i, "caption": f"photo {i}, caption {j}"}
                    for i in range(len(photos))
                    for j in range(2)
                ],
            }
        )
    )

    def not_here(*args, **kwargs):
        raise AssertionError("eval --ray ran the vision pass in-process")

    monkeypatch.setattr(engines.InProcessEngine, "analyse", not_here)
    code = main(
        [
            "eval",
            str(annotations),
            "--work-dir",
            str(tmp_path / "work"),
            *("--captioner", "none", "--detector", "none", "--topics", "none"),
            *("--embedder", str(tiny_models["embedder"]), "--device", "cpu", "--rows", "human"),
            "--ray",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "4 image(s) analysed" in out and "| human caption (oracle) |" in out
