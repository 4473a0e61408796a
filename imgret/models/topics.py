"""Topic scores of texts from a multi-label classifier (tweet-topic-21-multi by default)."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from imgret.config import Config
from imgret.models import loading

FILES = (
    "config.json (with id2label)",
    "model.safetensors (or pytorch_model.bin)",
    "tokenizer files (vocab.json + merges.txt, or tokenizer.json)",
)
MAX_TOKENS = 512


class TopicModel:
    """Every label with its sigmoid score, as the original: topics are not exclusive.

    Which labels count is decided later (:func:`imgret.describe.topic_labels`), so a threshold
    change needs no model run.
    """

    def __init__(self, model: str, config: Config) -> None:
        self.model_id = model
        self.batch_size = config.text_batch_size
        self.device, self.dtype = loading.placement(config.device)
        (self.tokenizer, self.model), self.revision = loading.load_located(
            "topics", model, FILES, config.models_dir, self._load
        )
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        # Some hub tokenizers leave model_max_length unset (a huge number); 512 is what
        # BERT-family classifiers' position tables hold.
        self.max_length = min(self.tokenizer.model_max_length, MAX_TOKENS)

    def _load(self, location: str):
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForSequenceClassification.from_pretrained(location, dtype=self.dtype)
        return tokenizer, model.to(self.device).eval()

    def classify(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        """Per text, (label, score in [0, 1]) for every label, in the model's label order."""
        scores: list[list[tuple[str, float]]] = []
        for start in range(0, len(texts), self.batch_size):
            scores += self._classify_batch(texts[start : start + self.batch_size])
        return scores

    @torch.inference_mode()
    def _classify_batch(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        inputs = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        logits = self.model(**inputs.to(self.device)).logits
        probabilities = torch.sigmoid(logits.float()).cpu().tolist()
        return [list(zip(self.labels, row, strict=True)) for row in probabilities]
