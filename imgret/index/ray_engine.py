"""Run the vision stages on a Ray cluster with Ray Data; the build driver stays as it is.

The driver (``build_index``) plans, holds the writer lock, embeds and commits one batch per
transaction, exactly as in-process; this engine only turns the planned paths into what the
vision stages see. The workers read the files themselves (the gallery must be at the same path
on every node: a local folder on one machine, NFS or a mounted bucket on a cluster), decoding
runs as CPU tasks, and each vision stage is a pool of actors that load their model once
(``num_gpus`` per actor, fractions allowed, so small models share a card). Pixels flow from
task to actor to actor in Ray's object store; the driver receives only the answers, streamed
with ``iter_batches``.

A file that fails on a worker (its stage raised on it) comes back with the reason, like an
unreadable file in-process, and the rest of its batch is kept. An actor that dies (killed, out
of memory, its node lost) is restarted by Ray and its batch sent again: Ray Data creates its
actors with ``max_restarts=-1`` and ``max_task_retries=-1``, and retries a decode task three
times. A batch that fails for good is left out, its files reported and retried by the next build.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgret.config import VISION_STAGES, Config
from imgret.errors import BadInputError, MissingPackageError
from imgret.images import read_image
from imgret.index.engines import Analysed, FileFacts, row_keys, see_each, vision_row
from imgret.index.store import Skipped
from imgret.models.stages import load_stages

INSTALL_HINT = "pip install 'imgret[ray]'"
LOST = "lost on a Ray worker (its batch failed after every retry); the next build retries it"


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an imgret error that says what to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without the data extra lacks it)
    except ImportError as exc:
        raise MissingPackageError(
            f"--ray needs Ray Data, which is not installed ({exc}); install it with "
            f"{INSTALL_HINT} (or pip install 'ray[data]')"
        ) from exc
    return ray


@dataclass
class RayEngine:
    """Ray Data as the engine of :func:`imgret.index.build.build_index`.

    ``address`` None joins the Ray already initialised in this process, else starts a local
    one (``init`` are more :func:`ray.init` arguments, e.g. ``num_cpus``); an address
    (``ray://head:10001``, ``auto``) joins that cluster. ``num_gpus`` and ``num_cpus`` are per
    actor, one number for every stage or stage → number; ``actors`` is each stage's pool size.
    """

    address: str | None = None
    num_gpus: float | Mapping[str, float] = 0.0
    num_cpus: float | Mapping[str, float] = 1.0
    actors: int | Mapping[str, int] = 1
    decode_cpus: float = 1.0
    init: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import_ray()  # fail before any work when Ray is missing
        numbers = [self.num_gpus, self.num_cpus, self.actors]
        for value in numbers:
            values = value.values() if isinstance(value, Mapping) else [value]
            if any(v < 0 for v in values):
                raise BadInputError(f"Ray resources cannot be negative (got {value})")
        actors = self.actors.values() if isinstance(self.actors, Mapping) else [self.actors]
        if any(n < 1 for n in actors):
            raise BadInputError(f"each vision stage needs at least one actor (got {self.actors})")

    def connect(self) -> Any:
        """Ray, initialised (joined or started) once per process."""
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"logging_level": logging.WARNING, **self.init}
            if self.address is None:
                options.setdefault("include_dashboard", False)
            ray.init(address=self.address, **options)
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver shows one bar of images done
        context.max_errored_blocks = -1  # a batch that fails for good is reported, not fatal
        return ray

    def analyse(self, gallery: Path, paths: Sequence[str], config: Config) -> Iterator[Analysed]:
        ray = self.connect()
        stages = [s for s in VISION_STAGES if getattr(config, s) is not None]
        actor_cpus, decode_cpus = self.fit(ray.cluster_resources().get("CPU", 0.0), stages)
        data = ray.data.from_items([{"path": p} for p in paths]).map_batches(
            _decode,
            fn_args=(str(gallery), config.max_image_megapixels, bool(stages)),
            batch_size=config.batch_size,
            batch_format="numpy",
            num_cpus=decode_cpus,
        )
        for stage in stages:
            last = stage == stages[-1]  # drops the pixels: the driver never receives them
            data = data.map_batches(
                _StageActor,
                fn_constructor_args=(stage, config, actor_cpus[stage], last),
                batch_size=config.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=int(_per_stage(self.actors, stage, 1))),
                num_cpus=actor_cpus[stage],
                num_gpus=_per_stage(self.num_gpus, stage, 0.0),
            )
        keys = row_keys(config)
        pending = set(paths)
        for batch in data.iter_batches(batch_size=config.batch_size, batch_format="numpy"):
            result = _analysed(batch, stages, keys)
            pending -= {row.path for row in result.rows}
            pending -= {s.path for s in result.skipped}
            pending -= {path for path, _ in result.failed}
            yield result
        if pending:
            yield Analysed(failed=[(path, LOST) for path in sorted(pending)])

    def fit(self, cluster_cpus: float, stages: Sequence[str]) -> tuple[dict[str, float], float]:
        """CPUs per actor of each stage and per decode task, scaled down to fit the cluster.

        Actors hold their CPUs for the whole build, so asking more than the cluster has (three
        stages of one CPU each and the decode tasks on a 2-core laptop) would wait for ever.
        The cluster is taken as it is when the build starts.
        """
        wanted = {stage: _per_stage(self.num_cpus, stage, 1.0) for stage in stages}
        total = self.decode_cpus + sum(
            wanted[stage] * _per_stage(self.actors, stage, 1) for stage in stages
        )
        scale = cluster_cpus / total if 0 < cluster_cpus < total else 1.0
        return {stage: cpus * scale for stage, cpus in wanted.items()}, self.decode_cpus * scale


def _per_stage(value: float | Mapping[str, float], stage: str, default: float) -> float:
    return float(value.get(stage, default) if isinstance(value, Mapping) else value)


_EMPTY = np.zeros(0, dtype=np.uint8).tobytes()


def _decode(
    batch: dict[str, np.ndarray], gallery: str, max_megapixels: float, keep_pixels: bool
) -> dict:
    """CPU task: read, hash and decode each file (never raises for a bad one); the pixels are
    kept for the stage actors, if any."""
    columns: dict[str, list[Any]] = {
        k: [] for k in ("path", "size", "mtime_ns", "sha256", "width", "height", "pixels")
    }
    columns |= {"skip": [], "failure": []}
    for path in batch["path"]:
        decoded = read_image(Path(gallery) / str(path), max_megapixels)
        image = decoded.image
        columns["path"].append(str(path))
        columns["size"].append(decoded.size)
        columns["mtime_ns"].append(decoded.mtime_ns)
        columns["sha256"].append(decoded.sha256)
        columns["width"].append(image.width if image else 0)
        columns["height"].append(image.height if image else 0)
        columns["pixels"].append(image.tobytes() if image else _EMPTY)
        columns["skip"].append("" if image else decoded.error or "unreadable")
        columns["failure"].append("")
    if not keep_pixels:
        del columns["pixels"]
    return {name: _column(values) for name, values in columns.items()}


def _column(values: list[Any]) -> np.ndarray:
    if values and isinstance(values[0], (bytes, str)):
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.int64)


class _StageActor:
    """One vision stage in an actor: the model is loaded once, then batch after batch."""

    def __init__(self, stage: str, config: Config, cpus: float, last: bool):
        import torch

        torch.set_num_threads(max(1, int(cpus)))
        self.stage, self.last = stage, last
        self.model = getattr(load_stages(config, which=[stage]), stage)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["path"])
        todo = [i for i in range(n) if not batch["skip"][i] and not batch["failure"][i]]
        images = [
            Image.frombytes(
                "RGB", (int(batch["width"][i]), int(batch["height"][i])), batch["pixels"][i]
            )
            for i in todo
        ]
        answers: list[str] = [""] * n
        failures = [str(f) for f in batch["failure"]]
        seen = see_each(self.stage, self.model, images)
        for i, (answer, failure) in zip(todo, seen, strict=True):
            if failure is None:
                # Plain data (text, counts, tags) as JSON: nothing the driver reads back
                # can run code, whoever wrote the bytes.
                answers[i] = json.dumps(answer)
            else:
                failures[i] = failure
        batch[f"out_{self.stage}"] = np.array(answers, dtype=object)
        batch[f"revision_{self.stage}"] = np.array([self.model.revision or ""] * n, dtype=object)
        batch["failure"] = np.array(failures, dtype=object)
        if self.last:
            del batch["pixels"]
        return batch


def _analysed(
    batch: Mapping[str, np.ndarray], stages: Sequence[str], keys: Mapping[str, str]
) -> Analysed:
    result = Analysed()
    for stage in stages:
        if len(batch["path"]):
            result.revisions[stage] = str(batch[f"revision_{stage}"][0]) or None
    for i, path in enumerate(batch["path"]):
        path = str(path)
        size, mtime_ns = int(batch["size"][i]), int(batch["mtime_ns"][i])
        if batch["skip"][i]:
            result.skipped.append(Skipped(path, size, mtime_ns, str(batch["skip"][i])))
        elif batch["failure"][i]:
            result.failed.append((path, str(batch["failure"][i])))
        else:
            facts = FileFacts(
                path,
                size,
                mtime_ns,
                str(batch["sha256"][i]),
                int(batch["width"][i]),
                int(batch["height"][i]),
            )
            outputs = {s: json.loads(batch[f"out_{s}"][i]) for s in stages}
            result.rows.append(vision_row(facts, outputs, keys))
    return result
