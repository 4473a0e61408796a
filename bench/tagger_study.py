"""How the tagger's labels should join the CPU profile's descriptions: how many, how sure, how
worded — measured end to end on coco-sample.

The CPU profile's descriptions (YOLOX-Nano counts and possible classes, no captioner) plus a
sentence of EfficientNet-Lite0's ImageNet labels, embedded by all-MiniLM-L6-v2; every human
caption is a query for its image, one gallery per split, ties count against the system (as in
``imgret eval``). Δ log-rank is the mean over images of log(rank in "vs") − log(rank in this
row) ± its standard error over images (bench/composition.py): positive is better, within two
standard errors is noise.

Tune on train2017 (80 images), read val2017 (159) once at the end. The vision stages run once,
through imgret's own index (``imgret.evaluation.protocol.index_dataset``, the tagger keeping
its 20 best labels down to 0.001, cached in tmp/tagger-study/); each row only composes and
embeds text. The adopted row is checked against ``imgret eval`` with the cpu profile's
defaults before its table is printed.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tagger_study.py                      # train2017
    HF_HUB_OFFLINE=1 .venv/bin/python bench/tagger_study.py --splits val2017 all  # the report
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import torch  # noqa: F401  (before the model libraries, as everywhere in imgret)
from common import busy_note, machine
from composition import Queries, log_rank_gain

from imgret import describe
from imgret.config import Config, apply_profile
from imgret.evaluation.datasets import load_dataset
from imgret.evaluation.metrics import Metrics, summarize, target_ranks
from imgret.evaluation.protocol import evaluate_dataset, index_dataset
from imgret.models.stages import load_stages
from tests.support.shared_data import COCO_SAMPLE, REPO, YOLOX_NANO

CAPTIONS = COCO_SAMPLE / "captions.json"
CACHE = REPO / "tmp" / "tagger-study"
TAGGER = "efficientnet-lite0"
EXAMPLE = "000000000139.jpg"
"""A val2017 photo (a woman in a dining room) whose description each row prints."""
TRAIN_EXAMPLE = "000000030752.jpg"
"""A train2017 photo (a cross-country skier with a dog)."""

Tags = list[tuple[str, float]]
GRID_TOP_K = (1, 2, 3, 5, 8, 12)
GRID_FLOORS = (0.01, 0.02, 0.05, 0.1, 0.2)


def kept(tags: Tags, top_k: int, floor: float) -> Tags:
    """What the tagger stores at ``tagger_top_k``/``tagger_min_score`` (its ranking is the
    cached one: the best first)."""
    return [(label, score) for label, score in tags[:top_k] if score >= floor]


def with_tags(row: Any, sentence: str, first: bool = False) -> str:
    """The counts and possible sentences with ``sentence`` after them (or before)."""
    parts = [text for _, text in describe.description_parts(counts=row.counts)]
    parts = [sentence, *parts] if first else [*parts, sentence]
    return " ".join(p for p in parts if p)


def names(labels: Sequence[str], rename: bool, counted: dict[str, int] | None) -> list[str]:
    """Label names as the description would say them, with or without the plain-word renames
    and the labels that repeat a counted class."""
    said: set[str] = set()
    if counted is not None:
        said = {describe.label_text(c) for c in counted}
        said |= {describe.pluralize(c) for c in said}
    out = []
    for label in labels:
        name = describe.label_text(label.split(",")[0])
        name = describe.TAG_NAMES.get(name, name) if rename else name
        if name and name not in said and name not in out:
            out.append(name)
    return out


def hedged(words: Sequence[str], lead: str = "it looks like", joiner: str = "or") -> str:
    if not words:
        return ""
    listed = [describe.indefinite(w) for w in words]
    body = listed[0] if len(listed) == 1 else f"{', '.join(listed[:-1])} {joiner} {listed[-1]}"
    return f"{lead} {body}."


BASELINE = "baseline: cpu profile today (counts + possible classes)"


def bare(words: Sequence[str]) -> str:
    return f"{', '.join(words)}." if words else ""


@dataclass(frozen=True)
class Variant:
    name: str
    compose: Callable[[Any], str]
    versus: str = BASELINE


def default(top_k: int, floor: float) -> Callable[[Any], str]:
    """imgret's own composition of the stored counts and tags at these settings."""
    return lambda row: describe.compose_description(
        counts=row.counts, tags=kept(row.tags, top_k, floor)
    )


def variants(top_k: int, floor: float) -> list[Variant]:
    """The grid of settings (vs the baseline), then wordings and cleanings at ``top_k`` and
    ``floor`` (vs imgret's composition at those settings)."""
    chosen = f"+ tags, top {top_k}, p ≥ {floor:g}"

    def at(row: Any) -> list[str]:
        return [label for label, _ in kept(row.tags, top_k, floor)]

    rows = [Variant(BASELINE, lambda row: describe.compose_description(counts=row.counts), "")]
    for k in GRID_TOP_K:
        for f in GRID_FLOORS:
            name = f"+ tags, top {k}, p ≥ {f:g}"
            rows.append(Variant(name, default(k, f)))
    if chosen not in {r.name for r in rows}:
        rows.append(Variant(chosen, default(top_k, floor)))
    rows += [
        Variant(
            "tags only (no counts)",
            lambda row: describe.compose_description(tags=kept(row.tags, top_k, floor)),
            chosen,
        ),
        Variant(
            "wording: 'it may show a, b and c'",
            lambda row: with_tags(
                row, hedged(names(at(row), True, row.counts), "it may show", "and")
            ),
            chosen,
        ),
        Variant(
            "wording: bare list ('restaurant, plate.')",
            lambda row: with_tags(row, bare(names(at(row), True, row.counts))),
            chosen,
        ),
        Variant(
            "wording: 'a photo of a …'",
            lambda row: with_tags(row, hedged(names(at(row), True, row.counts), "a photo of")),
            chosen,
        ),
        Variant(
            "tags sentence first",
            lambda row: with_tags(row, hedged(names(at(row), True, row.counts)), first=True),
            chosen,
        ),
        Variant(
            "raw ImageNet names (no renames)",
            lambda row: with_tags(row, hedged(names(at(row), False, row.counts))),
            chosen,
        ),
        Variant(
            "labels that repeat a counted class kept",
            lambda row: with_tags(row, hedged(names(at(row), True, None))),
            chosen,
        ),
    ]
    return rows


@dataclass(frozen=True)
class Result:
    variant: Variant
    metrics: Metrics
    ranks: np.ndarray
    distinct: int
    example: str


class Bench(Queries):
    """The queries and each image's stored row."""

    def __init__(self, dataset, rows: dict[str, Any], embedder) -> None:
        super().__init__(dataset, embedder)
        self.rows = [rows[name] for name in self.names]

    def run(self, variant: Variant) -> Result:
        descriptions = [variant.compose(row) for row in self.rows]
        similarity = self.vectors(self.queries) @ self.vectors(descriptions).T
        ranks = target_ranks(similarity, self.targets)
        example = next(
            (
                descriptions[self.names.index(n)]
                for n in (EXAMPLE, TRAIN_EXAMPLE)
                if n in self.names
            ),
            "",
        )
        return Result(variant, summarize(ranks), ranks, len(set(descriptions)), example)


def check_default(split: str | None, result: Result, config: Config) -> None:
    """The adopted row must be what ``imgret eval`` measures through a fresh index."""
    report = evaluate_dataset(
        CAPTIONS,
        config,
        split=split,
        rows=["counts+tags"],
        work_dir=CACHE / "eval-default",
        progress=False,
    )
    real, mine = report.rows[0].metrics, result.metrics
    if not all(
        math.isclose(getattr(real, k), getattr(mine, k)) for k in ("r1", "r5", "r10", "mean_rank")
    ):
        raise SystemExit(
            f"the bench's '{result.variant.name}' {mine} differs from imgret eval's {real}"
        )


def table(results: list[Result], targets: np.ndarray) -> list[str]:
    by_name = {r.variant.name: r for r in results}
    lines = [
        "| Change | vs | Distinct | R@1 | R@5 | R@10 | Median rank | Mean rank | Δ log-rank |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        m = r.metrics
        gain, versus = "—", "—"
        if r.variant.versus:
            mean, error = log_rank_gain(by_name[r.variant.versus].ranks, r.ranks, targets)
            gain = f"{mean:+.3f} ± {error:.3f}"
            versus = "baseline" if r.variant.versus == BASELINE else r.variant.versus
        lines.append(
            f"| {r.variant.name} | {versus} | {r.distinct} | {m.r1:.3f} | {m.r5:.3f} "
            f"| {m.r10:.3f} | {m.median_rank:g} | {m.mean_rank:.2f} | {gain} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", nargs="+", default=["train2017"])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profile = apply_profile("cpu", detector=str(YOLOX_NANO), device="cpu")
    top_k, floor = profile.tagger_top_k, profile.tagger_min_score
    print(f"# coco-sample: tagger study, CPU profile + {TAGGER}, {date.today()}")
    print(f"\n{busy_note()}; {json.dumps(machine())}")
    print(f"\nimgret's defaults: tagger_top_k={top_k}, tagger_min_score={floor:g}")

    wide = dataclasses.replace(profile, tagger=TAGGER, tagger_top_k=20, tagger_min_score=0.001)
    everything = load_dataset(CAPTIONS)
    stored, _, _ = index_dataset(everything, wide, CACHE / "eval", progress=True)
    rows = {image.path.name: row for image, row in zip(everything.images, stored, strict=True)}
    embedder = load_stages(profile, which=("embedder",)).embedder
    table_rows = variants(top_k, floor)
    for split in args.splits:
        dataset = everything if split == "all" else load_dataset(CAPTIONS, split=split)
        bench = Bench(dataset, rows, embedder)
        results = [bench.run(variant) for variant in table_rows]
        adopted = next(
            r for r in results if r.variant.name == f"+ tags, top {top_k}, p ≥ {floor:g}"
        )
        if profile.tagger == TAGGER:
            check_default(None if split == "all" else split, adopted, profile)
        print(
            f"\n## {split}: {len(bench.names)} images, {len(bench.queries)} caption queries, "
            "one gallery, ties against\n"
        )
        print("\n".join(table(results, bench.targets)))
        print("\nDescriptions of the example photo:")
        for r in results:
            print(f'- {r.variant.name}: "{r.example}"')
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
