"""The counting rule both detector back ends share: counts and possible classes."""

from __future__ import annotations

import numpy as np

from imgret.config import Config
from imgret.models.counting import Counting, count_classes

# --- possible classes -----------------------------------------------------------------------------


NAMES = ["person", "dog", "cat", "bus", "car"]


def test_count_classes_names_the_best_unsure_classes_as_possible():
    class_ids = np.array([0, 0, 1, 2, 3, 4, 3, 0, 2])
    scores = np.array([0.9, 0.3, 0.2, 0.1, 0.04, 0.15, 0.22, 0.08, 0.12])
    counts = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.05, limit=3)
    # person counted twice (its 0.08 box is below the threshold, not a possible class);
    # bus 0.22, dog 0.2, car 0.15 are possible best first; cat (best 0.12) is past the limit
    assert list(counts.items()) == [("person", 2), ("bus", 0), ("dog", 0), ("car", 0)]
    two = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.05, limit=2)
    assert list(two) == ["person", "bus", "dog"]
    # the floor: car at 0.15 and cat at 0.12 are under it; bus's 0.04 box is not its best
    high_floor = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=0.16, limit=3)
    assert list(high_floor.items()) == [("person", 2), ("bus", 0), ("dog", 0)]
    # a class with a counted box is never possible, however many unsure boxes it has
    low = count_classes(class_ids, scores, NAMES, confidence=0.2, floor=0.05, limit=5)
    assert list(low.items()) == [("bus", 1), ("dog", 1), ("person", 2), ("car", 0), ("cat", 0)]
    for floor, limit in [(0.0, 3), (0.05, 0)]:
        off = count_classes(class_ids, scores, NAMES, confidence=0.25, floor=floor, limit=limit)
        assert off == {"person": 2}
    names = dict(enumerate(NAMES))
    assert count_classes(class_ids, scores, names, 0.25, 0.05, 3) == counts
    assert count_classes(np.zeros(0, int), np.zeros(0), NAMES, 0.25, 0.05, 3) == {}


def test_lowest_score_is_the_floor_only_when_possible_classes_are_on():
    def lowest_score(config: Config) -> float:
        return Counting.from_config(config).lowest

    assert lowest_score(Config()) == 0.05
    assert lowest_score(Config(detector_possible_floor=0)) == 0.25
    assert lowest_score(Config(detector_possible_limit=0)) == 0.25
    assert lowest_score(Config(detector_possible_floor=0.4)) == 0.25
    keys = {
        Config(detector_possible_floor=f).vision_key()["detector_possible_floor"] for f in (0, 0.05)
    }
    assert keys == {0, 0.05}
    assert Config(detector=None).vision_key()["detector_possible_limit"] is None
