"""The query grammar: every operator and filter, the messages for bad ones, and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgret.errors import BadInputError
from imgret.retrieval.query import FILTERS, Filter, Query, parse_query


def test_free_words_phrases_exclusions_and_filters():
    query = parse_query(
        'the beach "ice  cream" -kids -"birthday cake" has:person>=2 after:2019 -ext:.PNG'
    )
    assert query == Query(
        text="the beach ice cream",
        phrases=("ice cream",),
        excluded=("kids", "birthday cake"),
        filters=(
            Filter("has", "person", op=">=", count=2),
            Filter("after", "2019"),
            Filter("ext", "png", negated=True),
        ),
    )
    assert query.constrained
    assert not parse_query("a red bus").constrained


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("has:dog", Filter("has", "dog")),
        ("has:Traffic_Light", Filter("has", "traffic light")),
        ('has:"traffic light">3', Filter("has", "traffic light", op=">", count=3)),
        ("has:person<3", Filter("has", "person", op="<", count=3)),
        ("has:person=0", Filter("has", "person", op="=", count=0)),
        ("IN:/Holidays/2019/", Filter("in", "holidays/2019")),
        ("before:2020-1-5", Filter("before", "2020-01-05")),
        ("after:2019-06", Filter("after", "2019-06")),
        ("camera:Canon", Filter("camera", "canon")),
        ('place:"New  York"', Filter("place", "new york")),
        ("-tag:restaurant", Filter("tag", "restaurant", negated=True)),
        ("ext:jpeg", Filter("ext", "jpeg")),
    ],
)
def test_each_filter_is_normalised(text, expected):
    assert parse_query(text).filters == (expected,)


def test_words_with_colons_and_dashes_stay_words():
    assert parse_query("note: ratio 16:9 t-shirt - end").text == "note: ratio 16:9 t-shirt end"
    assert parse_query('"http://example.com"').phrases == ("http://example.com",)
    # An unclosed quote ends with the query (a search box mid-typing), an empty one is nothing.
    assert parse_query('"red bu').phrases == ("red bu",)
    assert parse_query('"" bus') == Query(text="bus")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour:red", "unknown filter 'colour:'; filters are has:, tag:, in:, after:"),
        ("http://example.com", 'put words with a colon in quotes: "http:…"'),
        ("has:", "has: needs a value"),
        ("after:2019-13-01", "after:2019-13-01 is not a date: give a year, a month or a day"),
        ("before:19", "not a date"),
        ("has:dog>=many", "has:dog>=many is not a count"),
        ("has:>=3", "names no object"),
        ("in:/", "names no folder"),
        ("ext:docx", "ext:docx is not an image type imgret indexes: bmp, gif, jpeg, jpg, png"),
    ],
)
def test_bad_filters_name_what_is_accepted(text, message):
    with pytest.raises(BadInputError, match=re.escape(message)):
        parse_query(f"a dog {text}")


def test_every_filter_is_described_for_the_help():
    assert set(FILTERS) == {"has", "tag", "in", "after", "before", "camera", "place", "ext"}
    assert all(f"{name}:" in FILTERS[name] for name in FILTERS)


_WORD = st.text(st.characters(codec="utf-8", exclude_characters='"\x00'), min_size=1).map(
    lambda w: "".join(w.split())
)


@given(st.lists(st.one_of(_WORD, st.sampled_from(['"', "-", ":", "has:", "-x", '"a b"']))))
def test_any_text_parses_or_says_why(parts):
    """Whatever is typed, the parser returns a Query or a BadInputError, never another error."""
    try:
        query = parse_query(" ".join(parts))
    except BadInputError as exc:
        assert str(exc).islower() or "filter" in str(exc) or ":" in str(exc)
        return
    assert query.text == " ".join(query.text.split())
    assert all(p and p in query.text for p in query.phrases)


@given(st.lists(st.text(st.characters(categories=["L", "N"]), min_size=1), min_size=1))
def test_plain_words_are_all_free_text(words):
    query = parse_query(" ".join(words))
    assert (query.text, query.constrained) == (" ".join(words), False)
