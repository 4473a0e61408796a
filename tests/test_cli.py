"""The command line, run in-process: each command end to end on real photos and a real embedder,
and the errors a person meets, each an exit code and one line that says what to do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from imgret.cli import main
from tests.support.galleries import make_small_gallery

TEXT_ONLY = ["--captioner", "none", "--detector", "none", "--topics", "none"]
MINILM = [*TEXT_ONLY, "--embedder", "minilm", "--device", "cpu"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One index of the small gallery, built by the CLI, for the tests that only read it."""
    folder = tmp_path_factory.mktemp("cli")
    gallery = make_small_gallery(folder / "gallery")
    assert main(["index", str(gallery), "--index", str(folder / "index"), *MINILM, "--quiet"]) == 0
    return folder / "index"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def hits(capsys, *argv: str) -> list[dict]:
    code, out, err = run(capsys, "search", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_index_note_search_info_export(small_gallery, tmp_path, capsys):
    index = tmp_path / "index"
    code, out, err = run(capsys, "index", small_gallery, "--index", index, *MINILM, "--quiet")
    assert code == 0, err
    assert "6 new" in out

    bus = small_gallery / "bus.jpg"
    code, out, _ = run(capsys, "note", bus, "a red double-decker bus", "--index", index)
    assert (code, out.strip()) == (0, "saved notes for 1 image(s); re-embedded 1")
    notes = tmp_path / "notes.csv"
    notes.write_text("path,text\nzidane.jpg,two footballers in suits and ties\n")
    assert run(capsys, "note", "--csv", notes, "--index", index)[0] == 0

    found = hits(capsys, "a bus", "--index", index, "-k", "3")
    assert [h["rank"] for h in found] == [1, 2, 3]
    assert found[0]["relpath"] == "bus.jpg" and found[0]["notes"] == "a red double-decker bus"
    assert [h["score"] for h in found] == sorted((h["score"] for h in found), reverse=True)
    fast = hits(capsys, "two men in suits", "--index", index, "-k", "2", "--approximate", "--int8")
    assert fast[0]["relpath"] == "zidane.jpg"

    plot = tmp_path / "hits.png"
    code, out, err = run(capsys, "search", "a bus", "--index", index, "-k", "2", "--plot", plot)
    assert code == 0 and out.splitlines()[0].split()[-1] == "bus.jpg"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "saved a grid" in err

    code, out, _ = run(capsys, "info", "--index", index, "--json")
    info = json.loads(out)
    assert (code, info["images"], info["notes"], info["dimension"]) == (0, 6, 2, 384)
    assert info["cache_bytes"] > 6 * 384 * 4

    code, out, _ = run(capsys, "export", "--index", index, "--out", tmp_path / "export")
    matrix = np.load(tmp_path / "export" / "feature_matrix.npy")
    paths = json.loads((tmp_path / "export" / "paths.json").read_text())
    assert code == 0 and matrix.shape == (6, 384) and len(paths) == 6


def test_search_takes_the_query_grammar(built, capsys):
    """Words in quotes, exclusions and filters, from the command line (the small gallery:
    bus.jpg and zidane.jpg at the top, two COCO photos beside them and two in sub/)."""
    everything = {h["relpath"] for h in hits(capsys, "a photo", "--index", built, "-k", "10")}
    assert len(everything) == 6
    assert [h["relpath"] for h in hits(capsys, 'a photo "zidane"', "--index", built)] == [
        "zidane.jpg"
    ]
    found = hits(capsys, "a photo -zidane -bus", "--index", built)
    assert {h["relpath"] for h in found} == everything - {"zidane.jpg", "bus.jpg"}
    code, out, err = run(capsys, "search", "--index", built, "--json", "--", "-in:sub a photo")
    assert code == 0, err
    outside = {p for p in everything if not p.startswith("sub/")}
    assert {h["relpath"] for h in json.loads(out)} == outside
    with pytest.raises(SystemExit) as done:
        main(["search", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "query grammar:" in out and "has:person>=3" in out


def test_doctor_runs_every_configured_model_on_one_photo(small_gallery, capsys):
    code, out, err = run(capsys, "doctor", small_gallery / "bus.jpg", *MINILM)
    assert code == 0, out + err
    assert "embedder" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "a bus", "--index", "{missing}"], "imgret index"),
        (["search", "a bus", "--index", "{index}", "--int8", "--device", "cuda"], "--device cpu"),
        (["search", "a bus colour:red", "--index", "{index}"], "filters are has:, tag:"),
        (["search", "--index", "{index}"], "or --image PHOTO"),
        (
            ["search", "--image", "{index}/../gallery/bus.jpg", "--index", "{index}"],
            "without vision",
        ),
        (["duplicates", "--index", "{index}", "--threshold", "2"], "at most 1"),
        (["search", "a bus after:2019-13", "--index", "{index}"], "is not a date"),
        (["note", "--index", "{index}"], "--csv FILE"),
        (["index", "{missing}", "--index", "{index}", *MINILM], "is not a folder"),
    ],
)
def test_errors_exit_non_zero_with_what_to_do(argv, message, built, tmp_path, capsys):
    names = {"missing": tmp_path / "missing", "index": built}
    code, out, err = run(capsys, *(a.format(**names) for a in argv))
    assert code == 1 and out == ""
    assert err.startswith("imgret: ") and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_optional_package_says_what_to_install(built, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    code, out, err = run(capsys, "search", "a bus", "--index", built, "--approximate")
    assert (code, out) == (2, "")
    assert "pip install 'imgret[faiss]'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "option", "rule"),
    [
        (["index", "G", "--batch-size", "0"], "--batch-size", "whole number of at least 1"),
        (["index", "G", "--batch-size", "-1"], "--batch-size", "whole number of at least 1"),
        (["index", "G", "--wait", "nan"], "--wait", "number from 0"),
        (["index", "G", "--max-image-megapixels", "-5"], "--max-image-megapixels", "at least 0"),
        (["search", "q", "-k", "0"], "-k", "whole number of at least 1"),
        (["search", "q", "--min-score", "nan"], "--min-score", "number from -1 to 1"),
        (["search", "q", "--min-score", "inf"], "--min-score", "number from -1 to 1"),
        (["note", "a.jpg", "x", "--wait", "-1"], "--wait", "number from 0"),
        (["eval", "a.json", "--gallery-size", "1"], "--gallery-size", "at least 2"),
        (["eval", "a.json", "--limit", "ten"], "--limit", "whole number"),
    ],
)
def test_numeric_options_are_checked_before_anything_runs(tmp_path, capsys, argv, option, rule):
    index = tmp_path / "index"
    argv = [str(tmp_path) if a == "G" else a for a in argv]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--index", str(index)] if argv[0] != "eval" else argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and rule in err
    assert not index.exists()  # nothing ran, nothing was remembered


def test_an_index_file_without_tables_is_built_by_the_next_index(small_gallery, tmp_path, capsys):
    """kill -9 (or a full disk) just as the index file is created leaves it with no tables."""
    index = tmp_path / "index"
    index.mkdir()
    (index / "index.sqlite3").write_bytes(b"")
    code, _, err = run(capsys, "search", "a bus", "--index", index)
    assert code == 1 and "holds no tables yet" in err and "imgret index" in err
    code, out, err = run(capsys, "index", small_gallery, "--index", index, *MINILM, "--quiet")
    assert code == 0, err
    assert "6 new" in out
    assert hits(capsys, "a bus", "--index", index)
