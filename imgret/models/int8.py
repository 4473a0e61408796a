"""int8 copies of the text models, for encoding queries fast on a CPU.

A query is 15–50 tokens, and float32 matmuls that thin run well below a CPU's peak: on 2 cores
RoBERTa-base + INSTRUCTOR-large took 2.4–2.8× their arithmetic floor per query. Dynamic int8
quantisation of the linear layers (fbgemm kernels) brings them under that floor, 0.9×
(bench/RESULTS.md). It changes the vectors a little, so it is applied to queries only: the
stored vectors stay those of the float32 models (on the COCO sample with all-MiniLM-L6-v2,
float32 documents with int8 queries retrieved better than int8 on both sides).

PyTorch marks ``torch.ao.quantization`` deprecated, but its successor (torchao) has no fast
CPU kernel for this yet (15× slower than float32 here), so imgret uses it while torch ships
it and says so plainly where it is gone.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings

from imgret.errors import BadInputError, MissingPackageError
from imgret.models.stages import Stages


def int8_text_stages(stages: Stages) -> Stages:
    """Copies of the topic classifier and embedder with int8 linear layers; the originals (shared
    with the indexer through the stage cache) are left as they were."""
    return dataclasses.replace(
        stages, **{name: _int8_copy(getattr(stages, name)) for name in ("topics", "embedder")}
    )


def _int8_copy(stage):
    if stage is None:
        return None
    if not stage.device.startswith("cpu"):
        raise BadInputError(
            f"int8 query encoding runs on the CPU, but the {stage.model_id} stage is on "
            f"{stage.device}; drop --int8 (float16 on a GPU is faster)"
        )
    import torch

    copied = copy.copy(stage)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        try:
            from torch.ao.quantization import quantize_dynamic
        except ImportError as exc:
            raise MissingPackageError(
                f"this PyTorch ({torch.__version__}) no longer has torch.ao.quantization; "
                "search without --int8, or install torch 2.14 (scripts/setup.sh)"
            ) from exc
        copied.model = quantize_dynamic(stage.model, {torch.nn.Linear}, dtype=torch.qint8)
    return copied
