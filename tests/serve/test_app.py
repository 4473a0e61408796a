"""Every endpoint of the web app through FastAPI's test client, on real photos and MiniLM."""

from __future__ import annotations

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imgret.encode import encode
from imgret.index.notes import set_notes
from imgret.index.store import Store, writer_lock
from imgret.retrieval.searcher import Searcher
from imgret.serve.app import create_app
from tests.serve.conftest import ELEPHANTS, REAL_MODELS

pytestmark = [pytest.mark.slow, REAL_MODELS]

CLI_FIELDS = {
    "rank",
    "score",
    "path",
    "relpath",
    "description",
    "caption",
    "counts",
    "topics",
    "notes",
    "instruction",
}


def client(index) -> TestClient:
    return TestClient(create_app(index), base_url="http://127.0.0.1")


def test_search_ranks_like_the_library_and_explains_each_part(photo_index):
    web = client(photo_index)
    response = web.get("/api/search", params={"q": "a herd of elephants", "k": 5})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    hits = response.json()["hits"]
    searcher = Searcher(photo_index)
    expected = searcher.search("a herd of elephants", k=5)
    assert [h["relpath"] for h in hits] == [h.relpath for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert hits[0]["relpath"] == ELEPHANTS
    assert CLI_FIELDS | {"explanation", "thumbnail_url", "image_url"} <= set(hits[0])

    _, _, (query,) = encode(["a herd of elephants"], searcher.stages, searcher.config)
    for hit in hits:
        why = hit["explanation"]
        texts = [part["text"] for part in why["parts"]]
        assert " ".join(texts) == hit["description"]
        assert {p["part"] for p in why["parts"]} <= {"caption", "counts", "possible", "note"}
        _, _, vectors = encode(texts, searcher.stages, searcher.config)
        for part, vector in zip(why["parts"], vectors, strict=True):
            assert part["similarity"] == pytest.approx(float(vector @ query), abs=1e-4)
        best = max(why["parts"], key=lambda p: p["similarity"])
        assert why["best"] == best["part"]
    top = hits[0]["explanation"]
    assert top["best"] == "counts"
    counts = top["parts"][0]
    assert [counts["text"][a:b] for a, b in counts["highlights"]] == ["elephants"]
    described = hits[0]["description"]
    assert [described[a:b] for a, b in top["highlights"]] == ["elephants"]


def test_filters_in_a_query_are_not_scored_against_the_parts(photo_index):
    web = client(photo_index)
    plain = web.get("/api/search", params={"q": "a herd of elephants", "k": 3}).json()["hits"]
    filtered = web.get("/api/search", params={"q": "a herd of elephants ext:jpg", "k": 3})
    assert filtered.status_code == 200
    hits = filtered.json()["hits"]
    assert [h["relpath"] for h in hits] == [h["relpath"] for h in plain]
    assert [h["explanation"] for h in hits] == [h["explanation"] for h in plain]
    only_filters = web.get("/api/search", params={"q": "ext:jpg", "k": 3})
    assert only_filters.status_code == 200
    assert all(h["explanation"] is None for h in only_filters.json()["hits"])


def test_pages_of_hits_follow_each_other(photo_index):
    web = client(photo_index)
    whole = web.get("/api/search", params={"q": "people in the street", "k": 9}).json()["hits"]
    first = web.get("/api/search", params={"q": "people in the street", "k": 4}).json()["hits"]
    rest = web.get("/api/search", params={"q": "people in the street", "k": 5, "offset": 4}).json()[
        "hits"
    ]
    assert [h["relpath"] for h in first + rest] == [h["relpath"] for h in whole]
    assert [h["rank"] for h in rest] == [5, 6, 7, 8, 9]
    plain = web.get("/api/search", params={"q": "people in the street", "explain": "false"})
    assert all(h["explanation"] is None for h in plain.json()["hits"])
    beyond = web.get("/api/search", params={"q": "a bus", "k": 10, "offset": 100}).json()
    assert beyond == {"hits": []}


def test_more_like_this_uses_the_images_own_vector(photo_index):
    web = client(photo_index)
    hits = web.get("/api/similar", params={"path": "bus.jpg", "k": 5}).json()["hits"]
    assert len(hits) == 5 and "bus.jpg" not in {h["relpath"] for h in hits}
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    with Store.open(photo_index, readonly=True) as store:
        rows = {row.path: row for row in store.rows()}
    bus = rows["bus.jpg"].vector
    others = sorted(
        ((float(row.vector @ bus), path) for path, row in rows.items() if path != "bus.jpg"),
        reverse=True,
    )
    assert [h["relpath"] for h in hits] == [path for _, path in others[:5]]
    assert [h["score"] for h in hits] == pytest.approx([s for s, _ in others[:5]], abs=1e-5)
    assert hits[0]["explanation"]["parts"]
    assert web.get("/api/similar", params={"path": "nope.jpg"}).status_code == 404


def test_a_saved_note_re_embeds_the_image_and_moves_it_up(index_copy):
    web = client(index_copy)
    query = "a red double-decker bus"

    def rank_of(path: str) -> int:
        hits = web.get("/api/search", params={"q": query, "k": 18}).json()["hits"]
        return next(h["rank"] for h in hits if h["relpath"] == path)

    before = rank_of("zidane.jpg")
    response = web.post(
        "/api/notes",
        json={"path": "zidane.jpg", "text": "a red double-decker bus in london", "query": query},
    )
    assert response.status_code == 200
    hit = response.json()["hit"]
    assert hit["notes"] == "a red double-decker bus in london"
    assert hit["description"].endswith("a red double-decker bus in london.")
    assert hit["explanation"]["best"] == "note"
    after = rank_of("zidane.jpg")
    assert after == 1 < before
    top = web.get("/api/search", params={"q": query, "k": 1}).json()["hits"][0]
    assert top["score"] == pytest.approx(hit["score"], abs=1e-5)

    cleared = web.post("/api/notes", json={"path": "zidane.jpg", "text": ""})
    assert cleared.json()["hit"]["notes"] == "" and cleared.json()["hit"]["explanation"] is None
    assert rank_of("zidane.jpg") == before


def test_a_note_while_the_index_is_written_is_a_409(index_copy):
    web = client(index_copy)
    with writer_lock(index_copy):
        response = web.post("/api/notes", json={"path": "bus.jpg", "text": "mine"})
    assert response.status_code == 409
    assert "being written" in response.json()["error"]
    with Store.open(index_copy, readonly=True) as store:
        assert store.notes() == {}


def test_the_server_picks_up_vectors_written_by_another_process(index_copy):
    """A build or `imgret note` elsewhere changes the vectors token; the next search sees it."""
    web = client(index_copy)
    query = "a giraffe eating leaves"
    assert web.get("/api/search", params={"q": query, "k": 1}).json()["hits"][0]["relpath"] != (
        "bus.jpg"
    )
    set_notes(index_copy, {"bus.jpg": "a giraffe eating leaves from a tree"})
    top = web.get("/api/search", params={"q": query, "k": 1}).json()["hits"][0]
    assert top["relpath"] == "bus.jpg" and top["notes"].startswith("a giraffe")


def test_info_gives_the_index_facts(photo_index):
    info = client(photo_index).get("/api/info").json()
    assert (info["images"], info["embedded"], info["dimension"]) == (18, 18, 384)
    assert info["stages"]["detector"]["model"].endswith("yolox_nano.onnx")
    assert info["stages"]["embedder"]["model"] == "minilm"


def test_photos_and_thumbnails_are_served_with_etags(index_copy):
    web = client(index_copy)
    (hit,) = web.get("/api/search", params={"q": "a bus", "k": 1}).json()["hits"]
    assert hit["relpath"] == "bus.jpg"
    photo = web.get(hit["image_url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    with Store.open(index_copy, readonly=True) as store:
        gallery = store.gallery
    assert gallery is not None and photo.content == (gallery / "bus.jpg").read_bytes()
    again = web.get(hit["image_url"], headers={"If-None-Match": photo.headers["etag"]})
    assert again.status_code == 304 and not again.content

    thumb = web.get(hit["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    small = Image.open(io.BytesIO(thumb.content))
    assert max(small.size) == 320 and small.size[0] / small.size[1] == pytest.approx(
        810 / 1080, abs=0.01
    )
    (cached,) = (index_copy / "thumbnails").glob("*.jpg")
    made = cached.stat().st_mtime_ns
    assert web.get(hit["thumbnail_url"]).content == thumb.content
    assert cached.stat().st_mtime_ns == made
    fresh = web.get(hit["thumbnail_url"], headers={"If-None-Match": thumb.headers["etag"]})
    assert fresh.status_code == 304
    assert "max-age" in thumb.headers["cache-control"]


def test_thumbnails_follow_images_indexed_and_removed_while_serving(index_copy, tmp_path):
    """Thumbnails are looked up in memory; a build elsewhere still reaches them."""
    with Store.open(index_copy) as store:
        gallery = Path(shutil.copytree(store.gallery, tmp_path / "gallery"))
        store.set_gallery(gallery)
    web = client(index_copy)
    assert web.get("/thumbnails/bus-again.jpg").status_code == 404
    shutil.copy(gallery / "bus.jpg", gallery / "bus-again.jpg")
    with Store.open(index_copy) as store, store.transaction():
        (row,) = store.rows(["bus.jpg"])
        store.upsert([dataclasses.replace(row, path="bus-again.jpg")])
    added = web.get("/thumbnails/bus-again.jpg")
    assert added.status_code == 200 and added.content == web.get("/thumbnails/bus.jpg").content
    with Store.open(index_copy) as store, store.transaction():
        store.delete(["bus.jpg"])
    web.get("/api/search", params={"q": "a bus", "k": 1})  # the page asks before it shows
    assert web.get("/thumbnails/bus.jpg").status_code == 404
    assert web.get("/thumbnails/bus-again.jpg").status_code == 200


def test_the_page_and_its_assets_are_served(photo_index):
    web = client(photo_index)
    page = web.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<input id="q"' in page.text and "http" not in page.text.replace("http-equiv", "")
    script = web.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "/api/search" in script.text
    assert web.get("/static/app.css").headers["content-type"].startswith("text/css")
    docs = web.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "cdn" not in docs.text  # fastapi-offline serves Swagger UI from the package
    schema = web.get("/openapi.json").json()
    assert {"/api/search", "/api/similar", "/api/notes", "/api/info"} <= set(schema["paths"])


def test_vectors_reload_only_when_the_token_changes(index_copy):
    app = create_app(index_copy)
    library = app.state.library
    first = library.searcher()
    assert library.searcher() is first
    set_notes(index_copy, {"bus.jpg": "mine"})
    second = library.searcher()
    assert second is not first and second.stages is first.stages
    assert not np.shares_memory(second.vectors.vectors, first.vectors.vectors)
