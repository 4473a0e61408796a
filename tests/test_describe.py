"""The description and instruction a person reads beside every hit."""

from __future__ import annotations

import pytest

from imgret import describe
from imgret.config import Config, key_string


@pytest.mark.parametrize(
    ("noun", "plural"),
    [
        ("giraffe", "giraffes"),
        ("bus", "buses"),
        ("person", "people"),
        ("knife", "knives"),
        ("traffic light", "traffic lights"),
        ("teddy bear", "teddy bears"),
        ("sheep", "sheep"),
        ("skis", "skis"),
        ("strawberry", "strawberries"),
        ("toy", "toys"),
        ("bench", "benches"),
        ("wine glass", "wine glasses"),
        ("Woman", "Women"),
        ("pizza", "pizzas"),
        ("coffee", "coffee"),
    ],
)
def test_pluralize(noun, plural):
    assert describe.pluralize(noun) == plural


def test_count_sentence_number_words_then_many():
    assert describe.count_sentence({"giraffe": 2}) == "two giraffes are in the photo."
    assert describe.count_sentence({"dog": 1}) == "one dog is in the photo."
    assert describe.count_sentence({"car": 4}) == "four cars are in the photo."
    assert describe.count_sentence({"car": 5}) == "many cars are in the photo."
    assert (
        describe.count_sentence({"tree": 1, "giraffe": 2, "person": 9})
        == "many people, two giraffes and one tree are in the photo."
    )


def test_plural_only_names_count_pairs():
    assert describe.count_sentence({"skis": 1}) == "one pair of skis is in the photo."
    assert describe.count_sentence({"scissors": 2}) == "two pairs of scissors are in the photo."
    assert describe.count_phrase("Sunglasses", 7) == "many pairs of sunglasses"
    assert describe.indefinite("skis") == "a pair of skis"


def test_indefinite_article():
    assert describe.indefinite("dog") == "a dog"
    assert describe.indefinite("umbrella") == "an umbrella"
    assert describe.indefinite("Traffic_light") == "a traffic light"
    assert describe.indefinite("") == ""


def test_classes_counted_zero_are_named_as_possible():
    text = describe.compose_description(counts={"person": 2, "dog": 0, "umbrella": 0})
    assert text == "two people are in the photo. perhaps also a dog and an umbrella."
    assert describe.compose_description(counts={"kite": 0}) == "perhaps a kite."
    assert describe.possible_sentence([]) == ""
    with_note = describe.compose_description("a beach", {"kite": 0}, "holiday")
    assert with_note == "a beach. perhaps a kite. holiday."


def test_count_sentence_empty_when_nothing_detected():
    assert describe.count_sentence({}) == ""
    assert describe.count_sentence({"cat": 0}) == ""


def test_label_text_makes_words():
    assert describe.label_text("arts_&_culture") == "arts and culture"
    assert describe.label_text("diaries_&_daily_life") == "diaries and daily life"
    assert describe.label_text("Traffic_light") == "traffic light"


def test_clean_caption_drops_prompt_echo_and_spaces():
    assert (
        describe.clean_caption("a picture of two giraffes , near a tree .", "a picture of ")
        == "two giraffes, near a tree."
    )
    assert describe.clean_caption("A Picture of a cat", "a picture of ") == "a cat"
    assert describe.clean_caption("a dog", "a picture of ") == "a dog"


def test_compose_description_joins_sentences_without_dangling_parts():
    text = describe.compose_description(
        "two giraffes stand near a tree", {"giraffe": 2}, "Nairobi park, 2019"
    )
    assert (
        text == "two giraffes stand near a tree. two giraffes are in the photo. Nairobi park, 2019."
    )
    assert describe.compose_description("a cat", {}, "") == "a cat."
    assert describe.compose_description("", {}, "") == ""
    assert "in the photo" not in describe.compose_description("a cat", {}, "mine")
    with_text = describe.compose_description("a shop", {}, "", "OPEN 24 HOURS")
    assert with_text == 'a shop. the text "OPEN 24 HOURS" is written in the photo.'


def test_topic_labels_threshold_and_order():
    scores = [("sports", 0.1), ("news_&_social_concern", 0.2), ("family", 0.9)]
    assert describe.topic_labels(scores, 0.2) == ["family", "news_&_social_concern"]
    assert describe.topic_labels(scores, 0.95) == []


def test_instruction_template_and_fallback():
    assert describe.instruction(["arts_&_culture"]) == "Represent the arts and culture title:"
    assert (
        describe.instruction(["diaries_&_daily_life", "family"])
        == "Represent the diaries and daily life, family title:"
    )
    assert describe.instruction([]) == "Represent the photo title:"


def test_config_stage_none_and_keys():
    config = Config(captioner="none", detector="OFF", topics="", embedder="minilm")
    assert (config.captioner, config.detector, config.topics) == (None, None, None)
    with pytest.raises(ValueError, match="embedder"):
        Config(embedder="none")
    other = Config(captioner="none", detector="none", topics="none", embedder="other")
    assert key_string(config.vision_key()) == key_string(other.vision_key())
    assert key_string(config.text_key()) != key_string(other.text_key())
    assert Config.from_dict(config.to_dict()) == config


def test_description_parts_name_each_sentence_and_join_to_the_description():
    fields = {
        "caption": "a red bus",
        "counts": {"person": 2, "dog": 0},
        "notes": "my trip",
        "text_in_image": "CITY 12",
        "tags": [("trolleybus", 0.6), ("streetcar", 0.2)],
    }
    parts = describe.description_parts(**fields)
    assert parts == [
        ("caption", "a red bus."),
        ("counts", "two people are in the photo."),
        ("possible", "perhaps also a dog."),
        ("tags", "it looks like a bus or a tram."),
        ("text", 'the text "CITY 12" is written in the photo.'),
        ("note", "my trip."),
    ]
    assert " ".join(text for _, text in parts) == describe.compose_description(**fields)
    assert set(describe.DESCRIPTION_FIELDS) == set(fields)
    assert describe.description_parts(counts={"cat": 0}) == [("possible", "perhaps a cat.")]
    assert describe.description_parts() == []


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("restaurant", "restaurant"),
        ("tench, Tinca tinca", "fish"),
        ("maillot", "swimsuit"),
        ("passenger car", "train carriage"),
        ("Granny Smith", "green apple"),
        ("German shepherd", "german shepherd"),
        ("great white shark, white shark, man-eater", "great white shark"),
    ],
)
def test_tag_names_read_as_plain_words(label, name):
    assert describe.tag_name(label) == name


def test_the_tag_sentence_is_hedged_and_skips_what_the_counts_already_say():
    assert describe.tag_sentence(["restaurant"]) == "it looks like a restaurant."
    assert (
        describe.tag_sentence(["restaurant", "dining table", "alp"])
        == "it looks like a restaurant, a dining table or a mountain."
    )
    counted = {"refrigerator": 2, "microwave": 0, "oven": 1}
    assert describe.tag_sentence(["microwave", "refrigerator", "dishwasher"], counted) == (
        "it looks like a dishwasher."
    )
    assert describe.tag_sentence(["refrigerators", "oven"], counted) == ""
    assert describe.tag_sentence(["streetcar", "streetcar, tram"]) == "it looks like a tram."
    assert describe.tag_sentence([]) == ""


def test_tags_join_the_description_after_the_counts():
    text = describe.compose_description(
        counts={"person": 1, "dining table": 1},
        tags=[("restaurant", 0.64), ("dining table", 0.05), ("grand piano", 0.05)],
    )
    assert text == (
        "one dining table and one person are in the photo. "
        "it looks like a restaurant or a grand piano."
    )
    assert describe.compose_description(tags=[("tripod", 0.96)]) == "it looks like a tripod."
