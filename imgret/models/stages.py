"""Build the configured stages once per process.

Loading a model takes seconds to minutes, so each (stage, model, settings) is built once and
reused by the indexer, the searcher, ``imgret doctor`` and the notebooks alike. One model
loads at a time in a process: Hugging Face's loading swaps process-wide state while it runs
(modules made on the "meta" device), so two threads loading at once (the build's engine
thread and its driver) broke each other's models.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from imgret.config import STAGES, Config
from imgret.models import Captioner, Detector, Embedder, Tagger, TextReader, TopicClassifier


@dataclass
class Stages:
    """The loaded stages of a configuration; a stage switched off (or not asked for) is None."""

    captioner: Captioner | None = None
    detector: Detector | None = None
    topics: TopicClassifier | None = None
    embedder: Embedder | None = None
    ocr: TextReader | None = None
    tagger: Tagger | None = None


def load_stages(config: Config, which: Iterable[str] = STAGES) -> Stages:
    """Load the stages named in ``which`` that the configuration switches on."""
    wanted = set(which)
    unknown = wanted - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; stages are {', '.join(STAGES)}")
    with _LOADING:
        return Stages(
            **{
                name: _load(name, config)
                for name in STAGES
                if name in wanted and getattr(config, name) is not None
            }
        )


_LOADING = threading.Lock()


@functools.lru_cache(maxsize=16)
def _load(stage: str, config: Config):
    model = getattr(config, stage)
    if stage == "captioner":
        from imgret.models.captioner import BlipCaptioner

        return BlipCaptioner(model, config)
    if stage == "detector":
        from imgret.models.detector import load_detector

        return load_detector(model, config)
    if stage == "topics":
        from imgret.models.topics import TopicModel

        return TopicModel(model, config)
    if stage == "embedder":
        from imgret.models.embedder import InstructorEmbedder

        return InstructorEmbedder(model, config, uses_instruction=config.embedder_instruction)
    if stage == "tagger":
        from imgret.models.tagger import load_tagger

        return load_tagger(model, config)
    from imgret.models.ocr import RapidTextReader

    return RapidTextReader(model, config)


def stage_fields(config: Config) -> dict[str, str | None]:
    """Stage name → model, for messages and the index metadata."""
    return {name: getattr(config, name) for name in STAGES if name in dataclasses.asdict(config)}
