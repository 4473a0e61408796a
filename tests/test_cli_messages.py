"""What the command line says: options its messages promise exist, reports name the files
really written, odd file names keep the listing one hit per entry, a person's mistake is one
line, and other libraries stay quiet."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from imgret.cli import main
from tests.support.galleries import make_small_gallery
from tests.support.shared_data import REPO

MINILM = ["--captioner", "none", "--detector", "none", "--topics", "none"]
MINILM += ["--embedder", "minilm", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli-messages")
    gallery = make_small_gallery(folder / "gallery")
    shutil.copy(gallery / "bus.jpg", gallery / "two\nlines.jpg")
    assert main(["index", str(gallery), "--index", str(folder / "index"), *MINILM]) == 0
    return gallery, folder / "index"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_megapixel_limit_the_skip_message_names_is_an_option(tmp_path, capsys):
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    Image.new("RGB", (1200, 1000)).save(gallery / "big.png")
    index = tmp_path / "index"
    code, out, err = run(capsys, "index", gallery, "--index", index, *MINILM)
    assert code == 0 and "0 skipped" in out
    code, out, err = run(
        capsys, "index", gallery, "--index", tmp_path / "i2", *MINILM,
        "--max-image-megapixels", "1",
    )  # fmt: skip
    assert code == 0 and "1 skipped" in out and "--max-image-megapixels" in out


def test_note_waits_for_a_busy_index_as_its_message_says(built, capsys):
    from imgret.index.store import writer_lock

    _, index = built
    with writer_lock(index):
        code, _, err = run(capsys, "note", "bus.jpg", "a bus", "--index", index)
        assert code == 1 and "--wait SECONDS" in err
        code, _, err = run(capsys, "note", "bus.jpg", "a bus", "--index", index, "--wait", "0.2")
        assert code == 1 and "waited 0.2 s" in err


@pytest.mark.parametrize(("given", "written"), [("hits", "hits.png"), ("out", "out/search.png")])
def test_plot_reports_the_file_it_wrote(built, tmp_path, capsys, given, written):
    _, index = built
    (tmp_path / "out").mkdir()
    code, _, err = run(
        capsys, "search", "a bus", "--index", index, "-k", 2, "--plot", tmp_path / given
    )
    assert code == 0 and (tmp_path / written).is_file()
    assert err.strip().endswith(f"saved a grid of the hits to {tmp_path / written}")


def test_a_line_break_in_a_file_name_stays_inside_its_hit(built, capsys):
    _, index = built
    code, out, _ = run(capsys, "search", "a bus", "--index", index, "-k", 7)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 14  # rank line and description line per hit
    assert "'two\\nlines.jpg'" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "--index", "{file}"], "is a file, not a folder"),
        (["search", "a bus", "--index", "{file}"], "is a file, not a folder"),
        (["index", "{gallery}", "--index", "{file}"], "is a file, not a folder"),
        (["export", "--index", "{index}", "--out", "{file}"], "--out {file} is a file"),
        (["note", ".", "words", "--index", "{index}"], "is not an image file of the gallery"),
        (["index", "{gallery}", "--index", "{file}/index"], "cannot create the index folder"),
    ],
)
def test_a_mistake_is_one_line(built, tmp_path, capsys, argv, message):
    gallery, index = built
    names = {"file": tmp_path / "a-file", "index": index, "gallery": gallery}
    names["file"].write_text("not an index")
    code, out, err = run(capsys, *(a.format(**names) for a in argv))
    assert code != 0 and out == ""
    assert err.startswith("imgret: ") and message.format(**names) in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("odd", ["\n", "\r", "\x1e"])
def test_a_path_with_a_control_character_keeps_the_message_one_line(tmp_path, capsys, odd):
    missing = tmp_path / f"no{odd}index"
    code, out, err = run(capsys, "info", "--index", missing)
    assert code == 1 and out == ""
    line = err.removesuffix("\n")
    assert odd not in line and repr(odd)[1:-1] in line


def test_other_libraries_print_nothing_on_a_search_or_a_detector_load(built, tiny_models, tmp_path):
    gallery, index = built
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "fresh-settings")}
    env.pop("YOLO_VERBOSE", None)
    code = (
        "import sys; from imgret.cli import main; "
        "from imgret.models.detector import load_detector; from imgret.config import Config; "
        f"load_detector({str(tiny_models['detector'])!r}, Config(device='cpu')); "
        "sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "search", "a bus", "--index", str(index), "-k", "1"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr and "Ultralytics" not in result.stderr
    assert result.stderr.strip() == ""
