"""The counting rule both detector back ends share: boxes after NMS -> objects per class.

It lives apart from the back ends so that neither imports the other, and so the bench that
sweeps thresholds calls the very rule an index uses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from imgret.config import Config


@dataclass(frozen=True)
class Counting:
    """The configured thresholds that turn one image's boxes into counts, in both back ends."""

    confidence: float
    floor: float
    limit: int
    iou: float

    @classmethod
    def from_config(cls, config: Config) -> Counting:
        return cls(
            confidence=config.detector_confidence,
            floor=config.detector_possible_floor,
            limit=config.detector_possible_limit,
            iou=config.detector_iou,
        )

    @property
    def lowest(self) -> float:
        """The score both back ends predict at: the possible-class floor when that is on.

        One pass at the floor gives the same counts as a pass at ``confidence``: greedy NMS
        only lets a box suppress lower-scored ones, so the boxes a lower floor adds can never
        remove a box at or above the threshold.
        """
        if self.floor <= 0 or self.limit <= 0:
            return self.confidence
        return min(self.floor, self.confidence)

    def count(
        self, class_ids: np.ndarray, scores: np.ndarray, names: Sequence[str] | Mapping[int, str]
    ) -> dict[str, int]:
        return count_classes(class_ids, scores, names, self.confidence, self.floor, self.limit)


def count_classes(
    class_ids: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str] | Mapping[int, str],
    confidence: float,
    floor: float,
    limit: int,
) -> dict[str, int]:
    """One image's boxes after NMS → boxes per class at or above ``confidence``, plus up to
    ``limit`` classes with no such box whose best box scores at least ``floor``, counted 0.

    A 0 is what :func:`imgret.describe.compose_description` names as possible ("perhaps also
    a dog"): a small or half-hidden object the detector was unsure of is still a word a query
    may use. Counted classes come first (by name), possible ones after, best score first.
    ``floor`` or ``limit`` at 0 leaves possible classes out.
    """
    labels = [names[int(c)] for c in np.asarray(class_ids).tolist()]
    values = np.asarray(scores, dtype=np.float64).tolist()
    counted = Counter(
        label for label, score in zip(labels, values, strict=True) if score >= confidence
    )
    best: dict[str, float] = {}
    if floor > 0 and limit > 0:
        for label, score in zip(labels, values, strict=True):
            if label not in counted and score >= floor and score > best.get(label, -1.0):
                best[label] = score
    possible = sorted(best, key=lambda label: (-best[label], label))[: max(limit, 0)]
    return dict(sorted(counted.items())) | dict.fromkeys(possible, 0)
