"""Ranking: top-k selection, the Searcher on a built index, empty and missing indexes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from imgret.config import Config
from imgret.encode import encode
from imgret.errors import EmptyIndexError, IndexNotFoundError
from imgret.index.build import build_index
from imgret.index.store import Store
from imgret.retrieval.searcher import Searcher, search
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, needs_shared


@pytest.fixture(scope="module")
def index(tiny_models, tmp_path_factory):
    """An index of eight COCO photos with the tiny captioner, topics and embedder."""
    gallery = tmp_path_factory.mktemp("gallery")
    for image in coco_images(8):
        shutil.copy(image, gallery / image.name)
    config = Config(
        captioner=str(tiny_models["captioner"]),
        detector=None,
        topics=str(tiny_models["topics"]),
        embedder=str(tiny_models["embedder"]),
        device="cpu",
        batch_size=4,
        caption_max_length=12,
    )
    index = tmp_path_factory.mktemp("index")
    build_index(gallery, index, config, progress=False)
    return index


@needs_shared(COCO_SAMPLE)
def test_a_description_finds_its_own_image(index):
    searcher = Searcher(index)
    with Store.open(index) as store:
        rows = store.rows()
        assert searcher.config == store.config()
    instructions, _ = searcher.embed_queries([r.description for r in rows])
    assert instructions == [r.instruction for r in rows]
    results = searcher.search_many([r.description for r in rows], k=2)
    for row, hits in zip(rows, results, strict=True):
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert row.path in {h.relpath for h in hits if h.score > 0.9999}
        own = next(h for h in hits if h.relpath == row.path)
        assert (own.caption, own.description, own.topics) == (
            row.caption,
            row.description,
            row.topics,
        )
        assert own.path == searcher.gallery / row.path and own.path.is_file()


@needs_shared(COCO_SAMPLE)
def test_scores_are_cosines_ranked_best_first(index):
    searcher = Searcher(index)
    _, query = searcher.embed_queries(["two dogs playing in the snow"])
    hits = searcher.search("two dogs playing in the snow", k=100)
    assert len(hits) == len(searcher) == 8
    assert [h.rank for h in hits] == list(range(1, 9))
    by_path = dict(zip(searcher.relpaths, searcher.vectors.vectors @ query[0], strict=True))
    for hit in hits:
        assert hit.score == pytest.approx(float(by_path[hit.relpath]), abs=1e-6)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.relpath for h in searcher.search("two dogs playing in the snow", k=3)] == [
        h.relpath for h in hits[:3]
    ]
    cut = hits[3].score
    assert [h.relpath for h in searcher.search("two dogs playing in the snow", 8, cut)] == [
        h.relpath for h in hits if h.score >= cut
    ]
    assert json.loads(json.dumps([h.to_dict() for h in hits]))[0]["relpath"] == hits[0].relpath
    one_off = search(index, "two dogs playing in the snow", k=2)
    assert [h.relpath for h in one_off] == [h.relpath for h in hits[:2]]


@needs_shared(COCO_SAMPLE)
def test_the_index_maps_its_vectors_from_the_cache_its_build_wrote(index):
    with Store.open(index, readonly=True) as store:
        paths, matrix = store.vectors()
    searcher = Searcher(index)
    assert isinstance(searcher.vectors.vectors, np.memmap)
    assert searcher.relpaths == paths
    np.testing.assert_array_equal(searcher.vectors.vectors, matrix)


@needs_shared(COCO_SAMPLE)
def test_approximate_search_agrees_on_a_small_index(index):
    """Wiring only: eight images are fewer than the candidates, so every one is re-scored
    (recall on large sets is tests/retrieval/test_neighbours.py's and bench/query_latency.py's)."""
    queries = ["two dogs playing in the snow", "a plate of food", "a man riding a horse"]
    exact = Searcher(index).search_many(queries, k=5)
    approximate = Searcher(index, approximate=True).search_many(queries, k=5)
    for want, got in zip(exact, approximate, strict=True):
        assert [h.relpath for h in got] == [h.relpath for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


@needs_shared(COCO_SAMPLE)
def test_bad_arguments_say_what_is_wrong(index):
    searcher = Searcher(index)
    with pytest.raises(ValueError, match="at least 1"):
        searcher.search("a dog", k=0)
    with pytest.raises(ValueError, match="empty"):
        searcher.search("  ")
    with pytest.raises(ValueError, match="--device cpu"):
        Searcher(index, device="cuda", int8=True)
    assert searcher.search_many([], k=3) == []


def test_empty_or_missing_index_says_to_index_first(tiny_models, tmp_path):
    with pytest.raises(IndexNotFoundError, match="imgret index"):
        Searcher(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    config = Config(
        captioner=None, detector=None, topics=None, embedder=str(tiny_models["embedder"])
    )
    build_index(tmp_path / "empty", tmp_path / "index", config, progress=False)
    with pytest.raises(EmptyIndexError, match="imgret index"):
        Searcher(tmp_path / "index")


@needs_shared(COCO_SAMPLE)
def test_int8_queries_leave_the_shared_models_as_they_were(index):
    import torch

    exact, int8 = Searcher(index), Searcher(index, int8=True)
    with Store.open(index, readonly=True) as store:
        descriptions = [row.description for row in store.rows()]
    _, want = exact.embed_queries(descriptions)
    _, got = int8.embed_queries(descriptions)
    assert (got * want).sum(axis=1).min() > 0.95
    for stages, quantized in ((int8.stages, True), (exact.stages, False)):
        for model in (stages.topics.model, stages.embedder.model):
            kinds = {type(m) for m in model.modules()}
            assert (torch.ao.nn.quantized.dynamic.Linear in kinds) is quantized
            assert (torch.nn.Linear in kinds) is not quantized
    for description, hits in zip(descriptions, int8.search_many(descriptions, k=2), strict=True):
        assert description in {h.description for h in hits}


@needs_shared(COCO_SAMPLE)
def test_queries_asked_again_are_not_encoded_again(index):
    searcher = Searcher(index)
    many = [f"photo number {i}" for i in range(300)]  # more than the searcher remembers
    instructions, vectors = searcher.embed_queries(many)
    _, _, fresh = encode(many[:3], searcher.stages, searcher.config)
    np.testing.assert_allclose(vectors[:3], fresh, atol=1e-6)
    assert len(instructions) == len(vectors) == 300
    again_instructions, again = searcher.embed_queries(many[-2:] + many[:1])
    assert again_instructions == instructions[-2:] + instructions[:1]
    np.testing.assert_array_equal(again, np.stack([vectors[-2], vectors[-1], vectors[0]]))
    assert searcher.embed_queries([many[-1]])[1][0] is not None


def test_a_photo_is_described_by_the_indexs_own_stages_and_finds_itself(index, tmp_path):
    searcher = Searcher(index)
    with Store.open(index) as store:
        rows = store.rows()
    for row in rows[:3]:
        photo = searcher.gallery / row.path
        assert searcher.describe_photo(photo) == row.description
        hits = searcher.search(image=photo, k=2)
        assert row.path in {h.relpath for h in hits if h.score > 0.9999}
    # Words and filters combine with the photo: its description and the words are ranked,
    # the filters narrow the candidates (here: every image but the photo itself).
    photo = searcher.gallery / rows[0].path
    hits = searcher.search(f'at night -"{Path(rows[0].path).stem}"', k=3, image=photo)
    assert len(hits) == 3 and rows[0].path not in {h.relpath for h in hits}
    _, combined = searcher.embed_queries([f"{rows[0].description} at night"])
    assert hits[0].score == pytest.approx(
        float(np.max(searcher.vectors.vectors[1:] @ combined[0])), abs=1e-5
    )


def test_a_photo_needs_an_index_with_vision_stages(text_only, small_gallery, tmp_path):
    from imgret.errors import BadInputError

    build_index(small_gallery, tmp_path / "index", text_only, progress=False)
    with pytest.raises(BadInputError, match="built without vision stages"):
        Searcher(tmp_path / "index").search(image=small_gallery / "bus.jpg")
