"""Tiny random-weight copies of the three transformer stages' real models, built offline.

Each builder saves its model in the folder layout of the real checkpoint (``save_pretrained``
for BLIP and the RoBERTa classifier; a sentence-transformers folder of Transformer → Pooling →
Dense → Normalize for INSTRUCTOR), so imgret's real loading code reads them. Tokenizers
cannot be downloaded, so each is trained in memory on a small built-in corpus, in the
tokenizer family of the real model (WordPiece for BLIP, byte-level BPE for RoBERTa, Unigram
for T5). Everything is seeded: the same folder comes out every time.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer, SentencePieceUnigramTokenizer

TWEET_TOPIC_LABELS = (
    "arts_&_culture",
    "business_&_entrepreneurs",
    "celebrity_&_pop_culture",
    "diaries_&_daily_life",
    "family",
    "fashion_&_style",
    "film_tv_&_video",
    "fitness_&_health",
    "food_&_dining",
    "gaming",
    "learning_&_educational",
    "music",
    "news_&_social_concern",
    "other_hobbies",
    "relationships",
    "science_&_technology",
    "sports",
    "travel_&_adventure",
    "youth_&_student_life",
)
"""``cardiffnlp/tweet-topic-21-multi``'s ``id2label``, in its order."""

CORPUS = (
    "a picture of a red double-decker bus on a city road",
    "two giraffes stand tall near the trees in a park",
    "a man riding a wave on top of a surfboard",
    "a plate of spaghetti with tomato sauce and cheese",
    "one person and three cars are in the photo.",
    "Represent the sports title: a tennis player swings a racket",
    "Represent the food and dining title: a pizza on a table",
    "Represent the travel and adventure, photo title: a boat on the river",
    "a group of people standing in the street next to a traffic light",
    "a dog is sitting on a couch with a cat and a laptop",
    *(label.replace("_", " ") for label in TWEET_TOPIC_LABELS),
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,:;!?'\"-&()/",
)
"""What the tokenizers learn from; the last line keeps every common character in the vocabulary."""

IMAGE_SIZE = 32


def build_tiny_blip(folder: Path) -> Path:
    """A BlipForConditionalGeneration + BlipProcessor folder, as FuseCap's checkpoint."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(
        CORPUS,
        vocab_size=400,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    # BLIP's tokenizer is BERT's plus a "[DEC]" token that starts every generated caption.
    tokenizer = BertTokenizer(vocab=wordpiece.get_vocab(), bos_token="[DEC]", model_max_length=512)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(
        BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}), tokenizer
    )
    # Weights ten times wider than BLIP's default initialisation, so captions vary with the image.
    layers = {
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "initializer_range": 0.2,
    }
    config = BlipConfig(
        vision_config={**layers, "hidden_size": 32, "image_size": IMAGE_SIZE, "patch_size": 8},
        text_config={
            **layers,
            "hidden_size": 32,
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
        },
        projection_dim=32,
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)


def roberta_tokenizer(corpus: Iterable[str], vocab_size: int):
    """RoBERTa's tokenizer family (byte-level BPE), trained on ``corpus``."""
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus,
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    model_json = json.loads(bpe.to_str())["model"]
    return RobertaTokenizer(
        vocab=model_json["vocab"],
        merges=[tuple(merge) for merge in model_json["merges"]],
        model_max_length=512,
    )


def topic_classifier(tokenizer, **size: Any):
    """An untrained RoBERTa multi-label classifier with tweet-topic-21-multi's labels, seeded;
    ``size`` sets the architecture's dimensions (RoBERTa-base by default)."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        id2label=dict(enumerate(TWEET_TOPIC_LABELS)),
        label2id={label: i for i, label in enumerate(TWEET_TOPIC_LABELS)},
        problem_type="multi_label_classification",
        **size,
    )
    torch.manual_seed(0)
    return RobertaForSequenceClassification(config).eval()


def build_tiny_topics(folder: Path) -> Path:
    """A RoBERTa multi-label sequence classifier with tweet-topic-21-multi's 19 labels."""
    tokenizer = roberta_tokenizer(CORPUS, vocab_size=500)
    model = topic_classifier(
        tokenizer,
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        initializer_range=0.2,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


INSTRUCTOR_WIDTH = 32
INSTRUCTOR_DIMENSION = 24
"""Token width and output size; instructor-large's Dense maps 1024 → 768 the same way."""


def build_tiny_instructor(folder: Path) -> Path:
    """An INSTRUCTOR-style sentence-transformers folder: T5 encoder → mean → Dense → Normalize.

    Like hkunlp/instructor-large, the Pooling config leaves ``include_prompt`` at its default
    (True), and the Dense layer has no bias and an identity activation: excluding the
    instruction's tokens from the mean is the loader's job, as it is for the real model.
    """
    tokenizer = t5_tokenizer(CORPUS, vocab_size=300)
    return save_instructor(
        folder,
        tokenizer,
        INSTRUCTOR_DIMENSION,
        vocab_size=len(tokenizer),
        d_model=INSTRUCTOR_WIDTH,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
    )


def t5_tokenizer(corpus: Iterable[str], vocab_size: int):
    """T5's tokenizer family (SentencePiece Unigram), trained on ``corpus``."""
    from transformers import T5Tokenizer

    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(
        corpus,
        vocab_size=vocab_size,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    vocab = [tuple(piece) for piece in json.loads(unigram.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def save_instructor(folder: Path | str, tokenizer, dimension: int, **size: Any) -> Path:
    """A seeded, untrained T5 encoder (``size``: its T5Config dimensions) → mean → Dense to
    ``dimension`` without bias → Normalize, saved as INSTRUCTOR's sentence-transformers folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        feed_forward_proj="relu",
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        **size,
    )
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as encoder_folder:
        T5EncoderModel(config).eval().save_pretrained(encoder_folder)
        tokenizer.save_pretrained(encoder_folder)
        transformer = Transformer(encoder_folder, max_seq_length=512)
    width = config.d_model
    dense = Dense(width, dimension, bias=False, activation_function=torch.nn.Identity())
    model = SentenceTransformer(
        modules=[transformer, Pooling(width, "mean"), dense, Normalize()], device="cpu"
    )
    model.save(str(folder))
    return Path(folder)
