"""Explanations: query words marked in the description, parts scored, part vectors kept."""

from __future__ import annotations

import numpy as np

from imgret.serve.explain import PartVectors, explain, highlights, query_words

VOCABULARY = ("bus", "people", "dog", "red", "note")


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A real (if crude) unit-vector embedding: which of five words each text holds."""
    rows = np.array([[float(w in t) for w in VOCABULARY] for t in texts]) + 1e-3
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_query_words_leave_out_stop_words():
    assert query_words("A photo of the red Bus, and a bus!") == ["red", "bus"]
    assert query_words("the a of") == []


def test_highlights_find_the_query_words_and_their_plurals():
    text = "four people and one bus are in the photo. perhaps also two buses."
    spans = highlights(text, ["bus", "person", "people"])
    assert [text[a:b] for a, b in spans] == ["people", "bus", "buses"]
    assert highlights("two dogs.", ["dog"]) == [(4, 8)]
    assert highlights("two dogs.", []) == []


def test_each_part_is_scored_against_the_query():
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return bag_of_words(texts)

    vectors = PartVectors(embed)
    fields = [
        {"caption": "a red bus", "counts": {"person": 2}, "notes": "", "text_in_image": ""},
        {"caption": "", "counts": {"dog": 1}, "notes": "my dog", "text_in_image": ""},
    ]
    query = bag_of_words(["red bus"])[0]
    bus, dog = explain(fields, query, vectors, "a red bus")
    assert [p.part for p in bus.parts] == ["caption", "counts"]
    assert bus.best == "caption" and bus.parts[0].similarity > 0.99
    assert bus.parts[0].highlights == [(2, 5), (6, 9)]
    assert bus.highlights == [(2, 5), (6, 9)]
    assert [p.part for p in dog.parts] == ["counts", "note"] and dog.highlights == []
    assert dog.to_dict()["parts"][1] == {
        "part": "note",
        "text": "my dog.",
        "similarity": dog.parts[1].similarity,
        "highlights": [],
    }
    assert len(calls) == 1
    explain(fields, query, vectors, "a red bus")
    assert len(calls) == 1  # every part's vector was known


def test_part_vectors_forget_the_least_recently_used():
    seen: list[str] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return bag_of_words(texts)

    vectors = PartVectors(embed, capacity=2)
    vectors(["a bus.", "a dog."])
    vectors(["a bus."])
    vectors(["red."])  # "a dog." goes
    vectors(["a bus.", "a dog."])
    assert seen == ["a bus.", "a dog.", "red.", "a dog."]
