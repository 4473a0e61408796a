"""Any command line a person can type gives a result or one clear error (imgret's one line,
or argparse's usage), never a traceback, and a command that fails leaves the index as it was."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgret.cli import main
from imgret.index.store import Store
from tests.support.galleries import make_small_gallery

MINILM = ["--captioner", "none", "--detector", "none", "--topics", "none"]
MINILM += ["--embedder", "minilm", "--device", "cpu", "--quiet"]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

# What argv can hold: any text without NUL (the kernel cannot pass one) or lone surrogates.
typed = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-properties")
    gallery = make_small_gallery(folder / "gallery")
    index = folder / "index"
    assert main(["index", str(gallery), "--index", str(index), *MINILM]) == 0
    (folder / "a-file").write_text("not an index")
    return {"folder": folder, "gallery": gallery, "index": index}


def _state(index: Path) -> tuple:
    with Store.open(index, readonly=True) as store:
        vectors = hashlib.sha256(b"".join(r.vector.tobytes() for r in store.rows())).hexdigest()
        return store.notes(), [r.path for r in store.rows()], vectors


def _where(place: dict[str, Path]) -> st.SearchStrategy[str]:
    folder = place["folder"]
    return (
        st.sampled_from(
            [place["index"], folder / "a-file", folder / "missing", folder / "a-file" / "x", folder]
        ).map(str)
        | typed
    )


def _command(place: dict[str, Path]) -> st.SearchStrategy[list[str]]:
    index = st.just(str(place["index"]))
    images = st.sampled_from(["bus.jpg", "zidane.jpg", str(place["gallery"] / "bus.jpg")])
    search = st.tuples(
        st.just("search"),
        typed,
        st.just("-k"),
        st.integers(-3, 12).map(str) | typed,
        st.just("--index"),
        index | _where(place),
        st.sampled_from([[], ["--json"], ["--min-score", "0.1"], ["--min-score", "x"]]),
    )
    note = st.tuples(
        st.just("note"), images | typed, typed, st.just("--index"), index | _where(place)
    )
    reader = st.tuples(st.sampled_from(["info", "export"]), st.just("--index"), _where(place))
    export = st.tuples(
        st.just("export"), st.just("--index"), index, st.just("--out"), _where(place)
    )
    flat = st.one_of(search, note, reader, export).map(
        lambda parts: [a for p in parts for a in (p if isinstance(p, list) else [p])]
    )
    return flat | st.lists(
        typed | st.sampled_from(["--index", "-k", "--json", "--csv"]), max_size=5
    )


@PROPERTY
@given(data=st.data())
def test_any_command_line_gives_a_result_or_one_clear_error(place, capsys, monkeypatch, data):
    work = place["folder"] / "cwd"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)  # paths typed at random land here
    argv = data.draw(_command(place))
    before = _state(place["index"])
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: a usage line and the error, exit code 2
        code = exc.code
    _, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, err)
    if code != 0:
        assert err.startswith(("imgret: ", "usage: ")), (argv, err)
        if err.startswith("imgret: "):
            assert len(err.strip().splitlines()) == 1, (argv, err)
        assert _state(place["index"]) == before, argv
