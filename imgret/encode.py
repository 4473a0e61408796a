"""Text -> topics -> instruction -> vector: the one path descriptions and queries both take.

The original framework gives a query its instruction the same way as a description (the
topic classifier's labels above a threshold), and vectors are only comparable when both
sides are encoded alike, so build, search, notes, doctor and eval all call this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgret import describe
from imgret.config import TEXT_STAGES, Config
from imgret.models.stages import Stages

__all__ = ["TEXT_STAGES", "encode", "from_topic_scores", "topics_and_instructions"]

Topics = list[tuple[str, float]]


def topics_and_instructions(
    texts: Sequence[str], stages: Stages, config: Config
) -> list[tuple[Topics, str]]:
    """Per text, the topics that pass the threshold (with their scores) and the instruction."""
    if stages.topics is None or not texts:
        return [([], describe.instruction([])) for _ in texts]
    return [from_topic_scores(scores, config) for scores in stages.topics.classify(list(texts))]


def from_topic_scores(scores: Topics, config: Config) -> tuple[Topics, str]:
    """The topics above the threshold (with their scores) and the instruction they make."""
    labels = describe.topic_labels(scores, config.topic_threshold)
    by_label = dict(scores)
    return [(label, by_label[label]) for label in labels], describe.instruction(labels)


def encode(
    texts: Sequence[str], stages: Stages, config: Config
) -> tuple[list[Topics], list[str], np.ndarray]:
    """(topics, instructions, float32 [n, d] L2-normalised vectors) of texts, one batch each."""
    if stages.embedder is None:
        raise ValueError("encoding text needs the embedder stage loaded")
    pairs = topics_and_instructions(texts, stages, config)
    instructions = [instruction for _, instruction in pairs]
    vectors = stages.embedder.embed(list(zip(instructions, texts, strict=True)))
    return [topics for topics, _ in pairs], instructions, vectors
