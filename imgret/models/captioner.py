"""Captions from a BLIP captioning checkpoint (FuseCap by default), a batch at a time."""

from __future__ import annotations

import torch
from PIL import Image
from transformers import (
    BlipForConditionalGeneration,
    BlipProcessor,
    DynamicCache,
    EncoderDecoderCache,
)

from imgret.config import Config
from imgret.describe import clean_caption
from imgret.models import loading

FILES = (
    "config.json",
    "model.safetensors (or pytorch_model.bin)",
    "preprocessor_config.json",
    "tokenizer files (vocab.txt or tokenizer.json, tokenizer_config.json)",
)


class ImageKeyedCache(EncoderDecoderCache):
    """A generation cache whose cross-attention part beam search leaves in place.

    Beam search reorders every cached tensor by beam at each step. The cross-attention keys
    and values come from the image alone and are the same for all of an image's beams, so
    reordering them copies about 1 GB per step (batch 8, BLIP-base) and changes nothing:
    59% of captioning time on 2 CPU cores (bench/RESULTS.md).
    """

    def __init__(self) -> None:
        super().__init__(DynamicCache(), DynamicCache())

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)  # type: ignore[arg-type]


class BlipCaptioner:
    """BLIP conditional generation started from a text prompt, as the original framework.

    The prompt ("a picture of ") steers FuseCap towards its long, detailed captions; the
    model repeats it at the start of every caption, so it is cut off again here.
    """

    def __init__(self, model: str, config: Config) -> None:
        self.model_id = model
        self.prompt = config.caption_prompt
        self.num_beams = config.caption_num_beams
        self.max_length = config.caption_max_length
        self.batch_size = config.batch_size
        self.device, self.dtype = loading.placement(config.device)
        (self.processor, self.model), self.revision = loading.load_located(
            "captioner", model, FILES, config.models_dir, self._load
        )

    def _load(self, location: str) -> tuple[BlipProcessor, BlipForConditionalGeneration]:
        processor = BlipProcessor.from_pretrained(location)
        model = BlipForConditionalGeneration.from_pretrained(location, dtype=self.dtype)
        return processor, model.to(self.device).eval()  # type: ignore[arg-type]

    def caption(self, images: list[Image.Image]) -> list[str]:
        """One clean caption per image, in order; beam search with the configured settings."""
        captions: list[str] = []
        for start in range(0, len(images), self.batch_size):
            captions += self._caption_batch(images[start : start + self.batch_size])
        return captions

    @torch.inference_mode()
    def _caption_batch(self, images: list[Image.Image]) -> list[str]:
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self.processor(images=rgb, text=[self.prompt] * len(rgb), return_tensors="pt").to(
            self.device, self.dtype
        )
        # transformers 5 no longer reads generation settings from the checkpoint's config.
        output = self.model.generate(
            **inputs,
            num_beams=self.num_beams,
            max_length=self.max_length,
            cache=ImageKeyedCache(),
        )
        texts = self.processor.batch_decode(output, skip_special_tokens=True)
        return [clean_caption(text, self.prompt) for text in texts]
