"""Compose the readable description of an image and the instruction that goes with it.

Pure functions: the description is what a person reads beside a hit, so it must read as
English. The original glued words together ("two giraffe , one tree is in the photo",
"diaries and daily lifefamily"); these functions keep its idea and fix the grammar.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

TEMPLATE_VERSION = 4
"""Bump when the wording below changes: stored descriptions are then re-composed and re-embedded.

2: "one pair of skis" (was "one skis"); classes counted 0 are named as possible objects.
3: "two pizzas" (was "two pizza").
4: the tagger's labels as one sentence ("it looks like a restaurant or a dining room.")."""

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
FALLBACK_TOPIC = "photo"

_IRREGULAR_PLURALS = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "foot": "feet",
    "tooth": "teeth",
    "mouse": "mice",
    "goose": "geese",
    "ox": "oxen",
    "knife": "knives",
    "wife": "wives",
    "leaf": "leaves",
    "loaf": "loaves",
    "shelf": "shelves",
    "wolf": "wolves",
    "scarf": "scarves",
    "calf": "calves",
    "half": "halves",
    "cactus": "cacti",
    "fungus": "fungi",
    "louse": "lice",
}
_PAIRS = {
    "skis",
    "scissors",
    "glasses",
    "sunglasses",
    "jeans",
    "shorts",
    "trousers",
    "pants",
    "binoculars",
    "headphones",
    "goggles",
}
"""Names of one thing that read as plural: counted in pairs ("one pair of skis")."""
_UNCHANGED_PLURALS = _PAIRS | {
    "sheep",
    "deer",
    "fish",
    "aircraft",
    "luggage",
    "furniture",
    "clothing",
    "food",
    "footwear",
    "equipment",
    "seafood",
    "cattle",
    "broccoli",
    "pasta",
    "bread",
    "tableware",
    "kitchenware",
    "jewellery",
    "jewelry",
    "bison",
    "moose",
    "salmon",
    "shrimp",
    "squid",
    "swine",
    "series",
    "species",
    "tennis",
    "baseball",
    "football",
    "volleyball",
    "rugby",
    "golf",
    "coffee",
    "tea",
    "wine",
    "beer",
    "juice",
    "milk",
    "water",
    "cheese",
    "sushi",
    "popcorn",
    "bacon",
}
_ES_ENDINGS = ("s", "x", "z", "ch", "sh")
_O_ES_WORDS = {"tomato", "potato", "hero", "echo", "torpedo", "mango", "volcano"}


def pluralize(noun: str) -> str:
    """English plural of a detector's class name ("giraffe" → "giraffes", "bus" → "buses").

    Multi-word names pluralise their head noun, which is the last word ("traffic light" →
    "traffic lights", "glove" → "gloves"); names that already read as plural stay as they are.
    """
    words = noun.split(" ")
    head = words[-1]
    lower = head.lower()
    if lower in _UNCHANGED_PLURALS or not lower.isalpha():
        plural = head
    elif lower in _IRREGULAR_PLURALS:
        plural = _IRREGULAR_PLURALS[lower]
        plural = plural.capitalize() if head[0].isupper() else plural
    elif lower.endswith(_ES_ENDINGS) or lower in _O_ES_WORDS:
        plural = head + "es"
    elif lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        plural = head[:-1] + "ies"
    else:
        plural = head + "s"
    return " ".join([*words[:-1], plural])


def label_text(label: str) -> str:
    """A model's class or topic label as words: "arts_&_culture" → "arts and culture"."""
    text = label.replace("_&_", " and ").replace("&", " and ").replace("_", " ")
    return re.sub(r"\s+", " ", text).strip().lower()


def count_phrase(label: str, count: int) -> str:
    """ "one giraffe", "two giraffes", … "four giraffes", then "many giraffes" as the original.

    Plural-only names count pairs: "one pair of skis", "two pairs of scissors".
    """
    noun = label_text(label)
    if _is_pair(noun):
        noun = f"{'pair' if count == 1 else 'pairs'} of {noun}"
    elif count != 1:
        noun = pluralize(noun)
    return f"{'one' if count == 1 else NUMBER_WORDS.get(count, 'many')} {noun}"


def _is_pair(noun: str) -> bool:
    return noun.split(" ")[-1] in _PAIRS


def join_words(items: Sequence[str]) -> str:
    """Join as a person writes a list: "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def count_sentence(counts: Mapping[str, int]) -> str:
    """The sentence of object counts, most frequent first; empty when nothing was counted."""
    kept = [(label, n) for label, n in counts.items() if n > 0]
    if not kept:
        return ""
    kept.sort(key=lambda item: (-item[1], item[0]))
    phrases = [count_phrase(label, n) for label, n in kept]
    verb = "is" if len(kept) == 1 and kept[0][1] == 1 else "are"
    return f"{join_words(phrases)} {verb} in the photo."


def indefinite(label: str) -> str:
    """A class name with its indefinite article: "a dog", "an umbrella", "a pair of skis"."""
    noun = label_text(label)
    if not noun:
        return ""
    if _is_pair(noun):
        return f"a pair of {noun}"
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def possible_sentence(labels: Sequence[str], after_counts: bool = True) -> str:
    """Classes the detector saw only below its confidence threshold, hedged: "perhaps also a dog."

    Naming them costs little when they are wrong (a query rarely names what is absent) and
    helps when they are right (a small or half-hidden dog is still in the photo): on the COCO
    sample the right image's mean rank fell by a third (docs/cpu-profile.md).
    """
    words = list(dict.fromkeys(indefinite(label) for label in labels if label_text(label)))
    if not words:
        return ""
    return f"perhaps {'also ' if after_counts else ''}{join_words(words)}."


TAG_NAMES = {
    "alp": "mountain",
    "amphibian": "amphibious vehicle",
    "ashcan": "trash can",
    "ballplayer": "baseball player",
    "barrow": "wheelbarrow",
    "bell cote": "bell tower",
    "bicycle-built-for-two": "tandem bicycle",
    "chiffonier": "dresser",
    "cock": "rooster",
    "confectionery": "candy store",
    "crash helmet": "helmet",
    "crock pot": "slow cooker",
    "drake": "duck",
    "file": "filing cabinet",
    "four-poster": "four-poster bed",
    "granny smith": "green apple",
    "hand blower": "hand dryer",
    "hen": "chicken",
    "hotdog": "hot dog",
    "ice lolly": "popsicle",
    "jean": "jeans",
    "jinrikisha": "rickshaw",
    "liner": "ocean liner",
    "madagascar cat": "lemur",
    "maillot": "swimsuit",
    "maillot tank suit": "swimsuit",
    "medicine chest": "bathroom cabinet",
    "mountain tent": "tent",
    "notebook": "laptop",
    "ox": "cow",
    "passenger car": "train carriage",
    "pay-phone": "pay phone",
    "pickup": "pickup truck",
    "racket": "tennis racket",
    "ram": "sheep",
    "sax": "saxophone",
    "seashore": "beach",
    "sorrel": "horse",
    "streetcar": "tram",
    "studio couch": "couch",
    "tabby": "tabby cat",
    "teddy": "teddy bear",
    "tench": "fish",
    "titi": "monkey",
    "toyshop": "toy store",
    "trolleybus": "bus",
    "tub": "bathtub",
    "tusker": "elephant",
    "vacuum": "vacuum cleaner",
    "washbasin": "sink",
    "washer": "washing machine",
    "wing": "airplane wing",
}
"""ImageNet names that read badly or mean something else to a person ("passenger car" is a
railway carriage, "notebook" a laptop, "maillot" a swimsuit), in plain words. Picked from
the labels EfficientNet-Lite0 gives the coco-sample photos (docs/tagger.md)."""


def tag_name(label: str) -> str:
    """A classifier's label as a person says it: the first of comma-joined synonyms ("tench,
    Tinca tinca" → "fish" after :data:`TAG_NAMES`), lowercase, plain words."""
    name = label_text(label.split(",")[0])
    return TAG_NAMES.get(name, name)


def tag_sentence(labels: Sequence[str], counted: Iterable[str] = ()) -> str:
    """The tagger's labels, hedged: "it looks like a restaurant or a dining room."

    Labels that name a class the detector already counted (or named as possible) are left
    out, since their words are in the description already; so are repeated names.
    """
    said = {label_text(c) for c in counted}
    said |= {pluralize(c) for c in said}
    names = [name for name in dict.fromkeys(map(tag_name, labels)) if name and name not in said]
    if not names:
        return ""
    words = [indefinite(name) for name in names]
    if len(words) == 1:
        return f"it looks like {words[0]}."
    return f"it looks like {', '.join(words[:-1])} or {words[-1]}."


def clean_caption(caption: str, prompt: str = "") -> str:
    """Drop the prompt the captioner echoes back and tidy spacing; keep the caption's words."""
    text = caption.strip()
    stripped_prompt = prompt.strip().lower()
    if stripped_prompt and text.lower().startswith(stripped_prompt):
        text = text[len(stripped_prompt) :].strip()
    text = re.sub(r"\s+([,.!?;:])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


DESCRIPTION_FIELDS = ("caption", "counts", "notes", "text_in_image", "tags")
"""The stored fields (``ImageRow`` names) a description is composed from: the keyword
arguments of :func:`description_parts`, so a reader of a row (the web app's explanation)
passes them all without restating the list."""


def description_parts(
    caption: str = "",
    counts: Mapping[str, int] | None = None,
    notes: str = "",
    text_in_image: str = "",
    tags: Sequence[tuple[str, float]] = (),
    place: str = "",
) -> list[tuple[str, str]]:
    """The description's sentences in order, each named by the part it says: "caption",
    "counts", "possible" (classes the detector was unsure of), "tags" (the image classifier's
    labels, with their scores as stored), "text" (read in the image), "place" (where it was
    taken, when asked for), "note" (the user's own words).

    The web app shows and scores each part on its own ("why it matched"), and
    :func:`compose_description` joins them, so the two can never disagree. Missing parts are
    left out.
    """
    counts = counts or {}
    counted = _sentence(count_sentence(counts))
    unsure = [label for label, n in counts.items() if n == 0]
    parts = [
        ("caption", _sentence(caption)),
        ("counts", counted),
        ("possible", possible_sentence(unsure, after_counts=bool(counted))),
        ("tags", tag_sentence([label for label, _ in tags], counted=counts)),
    ]
    if text_in_image.strip():
        parts.append(
            ("text", _sentence(f'the text "{text_in_image.strip()}" is written in the photo'))
        )
    if place.strip():
        parts.append(("place", _sentence(f"taken in {place.strip()}")))
    parts.append(("note", _sentence(notes)))
    return [(name, text) for name, text in parts if text]


def compose_description(
    caption: str = "",
    counts: Mapping[str, int] | None = None,
    notes: str = "",
    text_in_image: str = "",
    tags: Sequence[tuple[str, float]] = (),
    place: str = "",
) -> str:
    """Description = caption + a sentence of counts + the classes the detector was unsure of +
    the tagger's labels + text read in the image + where it was taken (when asked for) + the
    user's notes (:func:`description_parts`, joined).

    ``counts`` maps a class to its number of boxes at or above the detector's threshold; a
    class counted 0 was seen only below it and is named as possible ("perhaps also a dog").
    Each part is one sentence; missing parts leave no trace (no dangling "is in the photo").
    """
    parts = description_parts(caption, counts, notes, text_in_image, tags, place)
    return " ".join(text for _, text in parts)


def topic_labels(scores: Iterable[tuple[str, float]], threshold: float) -> list[str]:
    """The labels that pass the threshold, best first, as the original (≥ 0.2 by default)."""
    kept = sorted((s for s in scores if s[1] >= threshold), key=lambda s: -s[1])
    return [label for label, _ in kept]


def instruction(topics: Sequence[str]) -> str:
    """The INSTRUCTOR instruction in the original's template: "Represent the … title:".

    Topics are joined with commas, since labels carry their own "and" ("Represent the
    diaries and daily life, family title:"); the original glued them ("daily lifefamily").
    With no topic it falls back to "photo", so every text still gets an instruction.
    """
    words = [label_text(t) for t in topics if label_text(t)]
    return f"Represent the {', '.join(words) if words else FALLBACK_TOPIC} title:"
