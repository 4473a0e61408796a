"""Indexing throughput: the original framework's one-image loop against imgret's build_index.

Both run in one process on the same images with the same real-size random-weight models
(bench/real_size_models.py), so their ratio holds even on a busy machine. The original-style
loop takes one image at a time through captioner → detector → topic classifier → embedder in
float32, calling the libraries directly as the original did; imgret's pipeline is
``imgret.build_index`` with its own settings (batches, decode threads, fp16 on GPU).
Model loading is timed apart and left out of the throughput; each side first warms up on one
image that is not counted.

    .venv/bin/python bench/indexing.py --images 12            # ~10 min on 2 cores
    .venv/bin/python bench/indexing.py --images 4 --profile   # where imgret's time goes
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch  # before ultralytics, which otherwise sets OMP_NUM_THREADS=1
from common import busy_note, coco_images, machine, sync
from PIL import Image
from real_size_models import DEFAULT_ROOT, real_size_models

from imgret import describe
from imgret.config import Config

STAGE_NAMES = ("captioner", "detector", "topics", "embedder")


class OriginalLoop:
    """The original framework's way: every image alone through each model, float32."""

    def __init__(self, models: dict[str, Path], config: Config, device: str):
        from sentence_transformers import SentenceTransformer
        from transformers import (
            AutoModelForSequenceClassification,
            AutoTokenizer,
            BlipForConditionalGeneration,
            BlipProcessor,
        )
        from ultralytics import YOLO

        self.config, self.device = config, device
        self.processor = BlipProcessor.from_pretrained(models["captioner"])
        self.blip = BlipForConditionalGeneration.from_pretrained(models["captioner"])
        self.blip.to(device).eval()
        self.yolo = YOLO(str(models["detector"]))
        self.topic_tokenizer = AutoTokenizer.from_pretrained(models["topics"])
        self.topic_model = AutoModelForSequenceClassification.from_pretrained(models["topics"])
        self.topic_model.to(device).eval()
        self.labels = [self.topic_model.config.id2label[i] for i in range(19)]
        self.instructor = SentenceTransformer(str(models["embedder"]), device=device)
        self.instructor.set_pooling_include_prompt(False)
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, stage: str, work: Callable[[], object]) -> object:
        sync(self.device)
        start = time.perf_counter()
        result = work()
        sync(self.device)
        self.seconds[stage] += time.perf_counter() - start
        return result

    @torch.inference_mode()
    def index_one(self, path: Path) -> torch.Tensor:
        image = self._timed("decode", lambda: Image.open(path).convert("RGB"))
        caption = self._timed("captioner", lambda: self._caption(image))
        counts = self._timed("detector", lambda: self._detect(path))
        text = describe.compose_description(caption, counts)
        topics = self._timed("topics", lambda: self._topics(text))
        instruction = describe.instruction(topics)
        return self._timed(
            "embedder", lambda: self.instructor.encode([text], prompt=instruction)[0]
        )

    def _caption(self, image: Image.Image) -> str:
        inputs = self.processor(
            images=image, text=self.config.caption_prompt, return_tensors="pt"
        ).to(self.device)
        output = self.blip.generate(
            **inputs,
            num_beams=self.config.caption_num_beams,
            max_length=self.config.caption_max_length,
        )
        text = self.processor.decode(output[0], skip_special_tokens=True)
        return describe.clean_caption(text, self.config.caption_prompt)

    def _detect(self, path: Path) -> dict[str, int]:
        result = self.yolo.predict(
            str(path),
            conf=self.config.detector_confidence,
            iou=self.config.detector_iou,
            device=self.device,
            verbose=False,
        )[0]
        counts: dict[str, int] = defaultdict(int)
        for c in result.boxes.cls.tolist():
            counts[result.names[int(c)]] += 1
        return dict(counts)

    def _topics(self, text: str) -> list[str]:
        inputs = self.topic_tokenizer(text, return_tensors="pt", truncation=True).to(self.device)
        scores = torch.sigmoid(self.topic_model(**inputs).logits[0]).tolist()
        return describe.topic_labels(zip(self.labels, scores, strict=True), 0.2)


def run_original(models: dict[str, Path], config: Config, images: list[Path], warmup: Path):
    start = time.perf_counter()
    loop = OriginalLoop(models, config, config.device)
    load = time.perf_counter() - start
    loop.index_one(warmup)
    loop.seconds.clear()
    start = time.perf_counter()
    for path in images:
        loop.index_one(path)
    wall = time.perf_counter() - start
    result = {"load_s": load, "wall_s": wall, "stages_s": dict(loop.seconds)}
    del loop
    return result


def _time_stages(stages, seconds: dict[str, float], device: str) -> None:
    """Wrap each loaded stage's batch method with a timer (the same objects build_index uses)."""
    methods = {
        "captioner": "caption",
        "detector": "detect",
        "topics": "classify",
        "embedder": "embed",
    }
    for stage, method in methods.items():
        model = getattr(stages, stage)
        inner = getattr(model, method)

        def timed(items, _inner=inner, _stage=stage):
            sync(device)
            start = time.perf_counter()
            result = _inner(items)
            sync(device)
            seconds[_stage] += time.perf_counter() - start
            return result

        setattr(model, method, timed)


def apply_proposals(stages, device: str) -> None:
    """The pipeline changes this bench proposes, applied to the loaded stages of this process
    only, so their effect is measured beside imgret as it is (see bench/RESULTS.md).

    1. Beam search keeps the captioner's cross-attention cache in place. At every step beam
       search reorders each cached tensor by beam; the cross-attention keys and values depend
       only on the image, the same for all of an image's beams, so reordering them copies
       about 1 GB per step (batch 8) for nothing: 59% of captioning time on 2 cores.
    2. On the CPU the detector takes one image at a time: Ultralytics letterboxes a batch of
       differently shaped photos to 640×640 squares, a single photo to its own 640×480-ish
       rectangle, and a CPU gains nothing from the batch to make up for the extra pixels.
    """
    from transformers import DynamicCache, EncoderDecoderCache

    class KeptCrossAttentionCache(EncoderDecoderCache):
        def reorder_cache(self, beam_idx: torch.Tensor) -> None:
            self.self_attention_cache.reorder_cache(beam_idx)

    generate = stages.captioner.model.generate

    def generate_keeping_cross_cache(*args, **kwargs):
        cache = KeptCrossAttentionCache(DynamicCache(), DynamicCache())
        return generate(*args, cache=cache, **kwargs)

    stages.captioner.model.generate = generate_keeping_cross_cache
    if not device.startswith("cuda"):
        detect = stages.detector.detect
        stages.detector.detect = lambda images: [c for image in images for c in detect([image])]


def run_imgret(
    config: Config, images: list[Path], warmup: Path, profile: Path | None, proposed: bool
):
    from imgret.indexer import build_index
    from imgret.models import stages as stage_factory

    start = time.perf_counter()
    stage_factory._load.cache_clear()  # fresh stage objects, so a patched run leaves no trace
    stages = stage_factory.load_stages(config)
    load = time.perf_counter() - start
    if proposed:
        apply_proposals(stages, config.device)
    image = Image.open(warmup).convert("RGB")
    caption = stages.captioner.caption([image])[0]
    stages.detector.detect([image])
    stages.topics.classify([caption])
    stages.embedder.embed([("Represent the photo title:", caption)])
    seconds: dict[str, float] = defaultdict(float)
    _time_stages(stages, seconds, config.device)
    with tempfile.TemporaryDirectory(prefix="imgret-bench-") as tmp:
        gallery = Path(tmp) / "gallery"
        gallery.mkdir()
        for path in images:
            shutil.copy(path, gallery / path.name)
        start = time.perf_counter()
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                report = build_index(gallery, Path(tmp) / "index", config, progress=False)
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)
            profile.write_text(table)
            print(table)
        else:
            report = build_index(gallery, Path(tmp) / "index", config, progress=True)
        wall = time.perf_counter() - start
    if report.new != len(images):
        raise RuntimeError(f"imgret indexed {report.new} of {len(images)}: {report.summary()}")
    return {"load_s": load, "wall_s": wall, "stages_s": dict(seconds)}


def breakdown(result: dict, n: int) -> str:
    stages = dict(result["stages_s"])
    other = result["wall_s"] - sum(v for k, v in stages.items() if k in STAGE_NAMES)
    parts = [f"{k} {stages.get(k, 0.0) / n:.2f}" for k in STAGE_NAMES]
    return ", ".join(parts) + f", other {other / n:.2f} s/image"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12, help="COCO sample photos to index")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=Config.batch_size)
    parser.add_argument("--text-batch-size", type=int, default=Config.text_batch_size)
    parser.add_argument(
        "--caption-length", type=int, default=Config.caption_max_length, help="tokens, pinned"
    )
    parser.add_argument("--models", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--skip-original", action="store_true", help="imgret's side only")
    parser.add_argument(
        "--proposed",
        action="store_true",
        help="also run imgret with the changes this bench proposes (apply_proposals)",
    )
    parser.add_argument("--profile", type=Path, nargs="?", const=Path("tmp/indexing-profile.txt"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    note = busy_note()
    models = real_size_models(args.models)
    paths = coco_images(args.images + 1)
    warmup, images = paths[0], paths[1:]
    config = Config(
        captioner=str(models["captioner"]),
        detector=str(models["detector"]),
        topics=str(models["topics"]),
        embedder=str(models["embedder"]),
        device=args.device,
        batch_size=args.batch_size,
        text_batch_size=args.text_batch_size,
        caption_max_length=args.caption_length,
    )
    n = len(images)
    print(f"{n} images, caption {args.caption_length} tokens, device {args.device}; {note}")
    results: dict[str, object] = {"machine": machine(), "note": note, "images": n}
    results["settings"] = {k: v for k, v in vars(args).items() if k not in {"json", "models"}}
    if not args.skip_original:
        original = run_original(models, config, images, warmup)
        results["original"] = original
        print(
            f"original loop: {n / original['wall_s']:.3f} images/s "
            f"(load {original['load_s']:.1f} s); {breakdown(original, n)}"
        )
    ours = run_imgret(config, images, warmup, args.profile, proposed=False)
    results["imgret"] = ours
    print(
        f"imgret:        {n / ours['wall_s']:.3f} images/s "
        f"(load {ours['load_s']:.1f} s); {breakdown(ours, n)}"
    )
    if args.proposed:
        proposed = run_imgret(config, images, warmup, None, proposed=True)
        results["imgret_proposed"] = proposed
        print(
            f"imgret + proposals: {n / proposed['wall_s']:.3f} images/s; {breakdown(proposed, n)}"
        )
    if not args.skip_original:
        for name in ("imgret", "imgret_proposed"):
            if name in results:
                ratio = results["original"]["wall_s"] / results[name]["wall_s"]
                results[f"speedup_{name}"] = ratio
                print(f"speed-up of {name} over the original loop: {ratio:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
