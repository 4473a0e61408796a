"""Notes from CSV files and for odd paths: every input gives the right notes or one clear
error, never a traceback and never a note stored for something that is not an image."""

from __future__ import annotations

import csv
import io
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgret.errors import BadInputError
from imgret.images import IMAGE_SUFFIXES
from imgret.index.build import build_index
from imgret.index.notes import read_notes_csv, set_notes
from imgret.index.store import Store
from tests.support.galleries import make_small_gallery

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def built(tmp_path_factory, text_only):
    folder = tmp_path_factory.mktemp("notes-csv")
    gallery = make_small_gallery(folder / "gallery")
    build_index(gallery, folder / "index", text_only, progress=False)
    return folder / "index"


def test_a_long_note_is_read_whole(tmp_path):
    note = "a very long note " * 60_000  # 1 MB, above the csv module's 128 KiB field limit
    path = tmp_path / "notes.csv"
    path.write_text(f'path,text\nbus.jpg,"{note}"\n', encoding="utf-8")
    before = csv.field_size_limit()  # 128 KiB, unless a library raised it (reverse_geocode)
    assert read_notes_csv(path) == {"bus.jpg": note.strip()}
    assert csv.field_size_limit() == before  # the module's limit is put back


@pytest.mark.parametrize("header", ["path,text", "Path,Notes", "file,note", "image;caption"])
def test_a_header_row_is_never_a_note(tmp_path, header):
    path = tmp_path / "notes.csv"
    path.write_text(f"{header}\nbus.jpg,a red bus\n", encoding="utf-8")
    assert read_notes_csv(path) == {"bus.jpg": "a red bus"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"bus.jpg,caf\xe9\n", "not UTF-8 text"),
        (b'bus.jpg,"unfinished\n', "line 1: not valid CSV"),
        (b'a.jpg,one\nbus.jpg,"a"b\n', "line 2: not valid CSV"),
        (b"bus.jpg,a,b\n", "row 1: expected two columns"),
        (b"bus.jpg,a bus\nnotes.txt,words\n", "row 2: 'notes.txt' is not an image file name"),
    ],
)
def test_a_bad_notes_file_is_named_with_its_fault(tmp_path, content, message):
    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message) as failure:
        read_notes_csv(path)
    assert str(path) in str(failure.value) and "\n" not in str(failure.value)


@pytest.mark.parametrize("given_path", [".", "sub", "", "notes.txt", "../outside.jpg"])
def test_notes_are_only_for_images_of_the_gallery(built, given_path):
    with Store.open(built, readonly=True) as store:
        before = store.notes()
    with pytest.raises(BadInputError):
        set_notes(built, {given_path: "words"})
    with Store.open(built, readonly=True) as store:
        assert store.notes() == before


names = st.from_regex(
    r"[a-zA-Z0-9_\-éß][a-zA-Z0-9 _\-éß]{0,9}(/[a-z0-9_\-]{1,8})?\.(jpg|PNG|webp)", fullmatch=True
)
texts = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00\ufeff"))


@FAST
@given(st.lists(st.tuples(names, texts), max_size=6), st.booleans())
def test_csv_written_by_any_tool_reads_back_as_written(tmp_path_factory, pairs, header):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(["path", "text"])
    writer.writerows(pairs)
    path = tmp_path_factory.mktemp("csv") / "notes.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    expected = {name.strip(): text.strip() for name, text in pairs}
    assert read_notes_csv(path) == expected


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_give_notes_or_one_clear_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("csv") / "notes.csv"
    path.write_bytes(content)
    try:
        notes = read_notes_csv(path)
    except BadInputError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in notes.items())


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(string.printable + "é/.\x00", max_size=20))
def test_any_path_gets_its_note_or_leaves_the_index_unchanged(built, name):
    with Store.open(built, readonly=True) as store:
        before = store.notes()
    try:
        set_notes(built, {name: "words"})
    except BadInputError:
        with Store.open(built, readonly=True) as store:
            assert store.notes() == before
        return
    with Store.open(built) as store:
        after = store.notes()
        changed = {key for key in after if after[key] != before.get(key)}
        assert changed and all(Path(key).suffix.lower() in IMAGE_SUFFIXES for key in changed)
        store.set_notes({key: before.get(key, "") for key in changed})
