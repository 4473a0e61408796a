"""Load each configured stage and run it on one image: the original's test_utils notebook.

When a search result looks wrong, the first question is which stage got it wrong; this shows
every stage's output for one picture, with how long loading and running took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgret import describe
from imgret.config import Config
from imgret.encode import from_topic_scores
from imgret.images import load_image
from imgret.models.stages import load_stages


@dataclass
class StageCheck:
    """What one stage returned for the image, and what it cost."""

    stage: str
    model: str | None
    output: Any = None
    load_seconds: float = 0.0
    run_seconds: float = 0.0
    error: str | None = None


@dataclass
class DoctorReport:
    image: Path
    checks: list[StageCheck] = field(default_factory=list)
    description: str = ""
    instruction: str = ""
    vector: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return all(check.error is None for check in self.checks)

    def summary(self) -> str:
        lines = [f"image: {self.image}"]
        for check in self.checks:
            if check.model is None:
                lines.append(f"  {check.stage:<9} off")
            elif check.error:
                lines.append(f"  {check.stage:<9} FAILED  {check.model}\n{_indent(check.error)}")
            else:
                lines.append(
                    f"  {check.stage:<9} ok      {check.model}  (load {check.load_seconds:.1f} s,"
                    f" run {check.run_seconds:.2f} s)\n{_indent(_show(check.output))}"
                )
        lines.append(f"description: {self.description}")
        lines.append(f"instruction: {self.instruction}")
        if self.vector is not None:
            norm = float(np.linalg.norm(self.vector))
            lines.append(f"vector: shape {tuple(self.vector.shape)}, norm {norm:.4f}")
        return "\n".join(lines)


def run_doctor(image: str | Path, config: Config | None = None) -> DoctorReport:
    """Run every configured stage on ``image``; a failing stage is reported, not raised."""
    config = config or Config()
    report = DoctorReport(image=Path(image))
    picture = load_image(Path(image), config.max_image_megapixels)
    outputs: dict[str, Any] = {}
    for stage, run in (
        ("captioner", lambda s: s.caption([picture])[0]),
        ("detector", lambda s: s.detect([picture])[0]),
        ("ocr", lambda s: s.read([picture])[0]),
        ("tagger", lambda s: s.tag([picture])[0]),
    ):
        outputs[stage] = _check(report, stage, config, run)
    report.description = describe.compose_description(
        outputs["captioner"] or "",
        outputs["detector"] or {},
        "",
        outputs["ocr"] or "",
        outputs["tagger"] or [],
    )
    scores = _check(report, "topics", config, lambda s: s.classify([report.description])[0])
    _, report.instruction = from_topic_scores(scores or [], config)
    vector = _check(
        report, "embedder", config, lambda s: s.embed([(report.instruction, report.description)])
    )
    report.vector = None if vector is None else vector[0]
    return report


def _check(report: DoctorReport, stage: str, config: Config, run) -> Any:
    check = StageCheck(stage, getattr(config, stage))
    report.checks.append(check)
    if check.model is None:
        return None
    try:
        start = time.perf_counter()
        model = getattr(load_stages(config, [stage]), stage)
        check.load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        check.output = run(model)
        check.run_seconds = time.perf_counter() - start
    except Exception as exc:  # the report shows every failure instead of stopping at one
        check.error = f"{type(exc).__name__}: {exc}"
        return None
    return check.output


def _show(output: Any) -> str:
    if isinstance(output, list):
        top = sorted(output, key=lambda item: -item[1])[:5]
        return ", ".join(f"{label} {score:.2f}" for label, score in top)
    if isinstance(output, dict):
        return ", ".join(f"{label}: {n}" for label, n in output.items()) or "(nothing found)"
    if isinstance(output, np.ndarray):
        return f"array {output.shape}"
    return repr(output)


def _indent(text: str) -> str:
    return "\n".join("            " + line for line in text.splitlines())
