"""The in-memory filter columns answer each filter as its SQL over the stored rows does.

The reference queries are the ones the filters ran inside SQLite before the columns were
held in memory (LIKE ignores ASCII case; an undated photo is before nothing), run here on
rows Hypothesis makes up: odd folder names, mixed case, dots, NULL-free empty metadata.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgret.index.store import COUNTS_TABLE, Store
from imgret.retrieval.facets import Facets
from tests.support.rows import stored_row

FOLDERS = ["", "Trips", "trips/2019", "trips/2019x", "Trips/2019/Summer", "a.b", "holidays"]
NAMES = ["IMG_1.JPG", "b.jpeg", "c.png", "d.tar.gz", ".jpg", "noext", "e.Tiff", "f%_.jpg"]
DATES = ["", "2019-05-05T12:00:00", "2019-06-01T00:00:00", "2020-01-01T08:00:00", "2024-07-01"]
CAMERAS = [("", ""), ("Canon", "EOS 5D"), ("NIKON CORPORATION", "D750"), ("Apple", "iPhone 12")]
LABELS = ["person", "dog", "traffic light"]

row_facts = st.tuples(
    st.sampled_from(FOLDERS),
    st.sampled_from(NAMES),
    st.sampled_from(DATES),
    st.sampled_from(CAMERAS),
    st.dictionaries(st.sampled_from(LABELS + ["Dog"]), st.integers(0, 4), max_size=3),
)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


REFERENCE = {
    "in": lambda v: ("SELECT rowid FROM images WHERE path LIKE ? ESCAPE '\\'", [_like(v) + "/%"]),
    "ext": lambda v: ("SELECT rowid FROM images WHERE lower(path) LIKE ? ESCAPE '\\'", [f"%.{v}"]),
    "after": lambda v: ("SELECT rowid FROM images WHERE taken >= ?", [v]),
    "before": lambda v: ("SELECT rowid FROM images WHERE taken != '' AND taken < ?", [v]),
    "camera": lambda v: (
        "SELECT rowid FROM images WHERE (camera_make || ' ' || camera_model) LIKE ? ESCAPE '\\'",
        [f"%{_like(v)}%"],
    ),
}


def _index(folder: Path, facts: list[tuple]) -> Path:
    rows = []
    for i, (directory, name, taken, (make, model), counts) in enumerate(facts):
        # Each file in a folder of its own (paths must differ), its name kept whole.
        path = f"{directory}/{i}/{name}" if directory else f"{i}/{name}"
        row = stored_row(path, i)
        rows.append(
            dataclasses.replace(
                row, counts=counts, taken=taken, camera_make=make, camera_model=model
            )
        )
    with Store.open(folder, create=True) as store:
        store.upsert(rows)
    return folder


def _same(store: Store, got: np.ndarray, select: str, args: list) -> None:
    want = store.rowids_of(select, args)
    assert sorted(got.tolist()) == sorted(want.tolist()), (select, args)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(facts=st.lists(row_facts, min_size=1, max_size=30))
def test_every_filter_column_agrees_with_its_sql(tmp_path_factory, facts):
    index = _index(tmp_path_factory.mktemp("index"), facts)
    with Store.open(index, readonly=True) as store:
        facets = Facets.read(store)
        for folder in ["trips", "trips/2019", "trips/2019/summer", "a.b", "nowhere"]:
            _same(store, facets.in_folder(folder), *REFERENCE["in"](folder))
        for suffix in ["jpg", "jpeg", "png", "gz", "tiff", "noext"]:
            _same(store, facets.with_extension([suffix]), *REFERENCE["ext"](suffix))
        for date in ["2019", "2019-06", "2019-06-01", "2020", "2024-07-01", "2030"]:
            _same(store, facets.after(date), *REFERENCE["after"](date))
            _same(store, facets.before(date), *REFERENCE["before"](date))
        for camera in ["canon", "eos 5d", "nikon", "iphone", "z"]:
            _same(store, facets.by_camera(camera), *REFERENCE["camera"](camera))
        for label, (op, count) in itertools.product(
            ["person", "dog", "traffic light", "cat"],
            [(">=", 1), (">", 1), ("=", 2), ("<=", 2), ("<", 3)],
        ):
            select = f"SELECT image FROM {COUNTS_TABLE} WHERE label = ? AND count {op} ?"
            _same(store, facets.has(label, op, count), select, [label, count])
