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

``--cpu-profile`` times the ``cpu`` profile's real models instead (YOLOX-Nano from
../shared/models, EfficientNet-Lite0 tags, all-MiniLM-L6-v2) building an index of the COCO
sample, with ``--tagger none`` for the profile without its tagger:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/indexing.py --cpu-profile --images 238
    HF_HUB_OFFLINE=1 .venv/bin/python bench/indexing.py --cpu-profile --images 238 --tagger none
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch  # before ultralytics, which otherwise sets OMP_NUM_THREADS=1
from common import busy_note, machine, sync
from PIL import Image
from real_size_models import DEFAULT_ROOT, real_size_models

from imgret import describe
from imgret.config import Config
from tests.support.galleries import coco_images

STAGE_NAMES = ("captioner", "detector", "topics", "embedder")
THREADS = torch.get_num_threads()
"""PyTorch's threads at start. Ultralytics' first predict on a CPU sets them, for the whole
process, to min(8, cores - 1): 1 on 2 cores. Each side starts from this count again, and each
records the count it ended with."""


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
    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    loop = OriginalLoop(models, config, config.device)
    load = time.perf_counter() - start
    loop.index_one(warmup)
    loop.seconds.clear()
    start = time.perf_counter()
    for path in images:
        loop.index_one(path)
    wall = time.perf_counter() - start
    result = {
        "load_s": load,
        "wall_s": wall,
        "stages_s": dict(loop.seconds),
        "torch_threads_at_end": torch.get_num_threads(),
    }
    del loop
    return result


STAGE_METHODS = {
    "captioner": "caption",
    "detector": "detect",
    "tagger": "tag",
    "topics": "classify",
    "embedder": "embed",
}


def _time_stages(stages, seconds: dict[str, float], device: str) -> None:
    """Wrap each loaded stage's batch method with a timer (the same objects build_index uses)."""
    for stage, method in STAGE_METHODS.items():
        model = getattr(stages, stage)
        if model is None:
            continue
        inner = getattr(model, method)

        def timed(items, _inner=inner, _stage=stage):
            sync(device)
            start = time.perf_counter()
            result = _inner(items)
            sync(device)
            seconds[_stage] += time.perf_counter() - start
            return result

        setattr(model, method, timed)


class PeakMemory:
    """The process's resident memory, sampled every 0.1 s from a thread, and its peak."""

    def __enter__(self) -> PeakMemory:
        import psutil

        self.process = psutil.Process()
        self.start_mb = self.peak_mb = self.process.memory_info().rss / 2**20
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.1):
            self.peak_mb = max(self.peak_mb, self.process.memory_info().rss / 2**20)

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def run_imgret(config: Config, images: list[Path], warmup: Path, profile: Path | None):
    from imgret.index.build import build_index
    from imgret.models.stages import load_stages

    torch.set_num_threads(THREADS)
    start = time.perf_counter()
    stages = load_stages(config)
    load = time.perf_counter() - start
    image = Image.open(warmup).convert("RGB")
    caption = stages.captioner.caption([image])[0]
    stages.detector.detect([image])
    stages.topics.classify([caption])
    stages.embedder.embed([(describe.instruction([]), caption)])
    seconds: dict[str, float] = defaultdict(float)
    _time_stages(stages, seconds, config.device)
    with tempfile.TemporaryDirectory(prefix="imgret-bench-") as tmp:
        gallery = Path(tmp) / "gallery"
        gallery.mkdir()
        for path in images:
            shutil.copy(path, gallery / path.name)
        with PeakMemory() as memory:
            start = time.perf_counter()
            if profile:
                # cProfile, not torch.profiler: a 4-image build under the latter grew past 20 GB
                # here. Torch's kernels show up as the built-in methods that call them.
                profiler = cProfile.Profile()
                report = profiler.runcall(
                    build_index, gallery, Path(tmp) / "index", config, progress=False
                )
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
                profile.parent.mkdir(parents=True, exist_ok=True)
                profile.write_text(text.getvalue())
                print(text.getvalue())
            else:
                report = build_index(gallery, Path(tmp) / "index", config, progress=True)
            wall = time.perf_counter() - start
    if report.new != len(images):
        raise RuntimeError(f"imgret indexed {report.new} of {len(images)}: {report.summary()}")
    return {
        "load_s": load,
        "wall_s": wall,
        "stages_s": dict(seconds),
        "torch_threads_at_end": torch.get_num_threads(),
        "rss_at_start_mb": memory.start_mb,
        "rss_peak_mb": memory.peak_mb,
    }


def run_cpu_profile(tagger: str | None, images: list[Path], warmup: Path, device: str) -> dict:
    """The cpu profile's real models building an index of ``images``; loading and a warm-up
    on ``warmup`` are left out, the stages' time is taken inside the build."""
    from imgret.config import apply_profile
    from imgret.index.build import build_index
    from imgret.models.stages import load_stages
    from tests.support.shared_data import YOLOX_NANO

    config = apply_profile("cpu", detector=str(YOLOX_NANO), tagger=tagger, device=device)
    start = time.perf_counter()
    stages = load_stages(config)
    load = time.perf_counter() - start
    image = Image.open(warmup).convert("RGB")
    stages.detector.detect([image])
    if stages.tagger is not None:
        stages.tagger.tag([image])
    stages.embedder.embed([(describe.instruction([]), "a warm-up")])
    seconds: dict[str, float] = defaultdict(float)
    _time_stages(stages, seconds, device)
    with tempfile.TemporaryDirectory(prefix="imgret-bench-") as tmp:
        gallery = Path(tmp) / "gallery"
        gallery.mkdir()
        for path in images:
            shutil.copy(path, gallery / path.name)
        start = time.perf_counter()
        report = build_index(gallery, Path(tmp) / "index", config, progress=False)
        wall = time.perf_counter() - start
    if report.new != len(images):
        raise RuntimeError(f"imgret indexed {report.new} of {len(images)}: {report.summary()}")
    return {"tagger": tagger, "load_s": load, "wall_s": wall, "stages_s": dict(seconds)}


def breakdown(result: dict, n: int) -> str:
    stages = dict(result["stages_s"])
    other = result["wall_s"] - sum(v for k, v in stages.items() if k in STAGE_NAMES)
    parts = [f"{k} {stages.get(k, 0.0) / n:.2f}" for k in STAGE_NAMES]
    threads = result["torch_threads_at_end"]
    return ", ".join(parts) + f", other {other / n:.2f} s/image; torch threads at the end {threads}"


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
    parser.add_argument("--profile", type=Path, nargs="?", const=Path("tmp/indexing-profile.txt"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--cpu-profile", action="store_true", help="the cpu profile's real models instead"
    )
    parser.add_argument(
        "--tagger", default="efficientnet-lite0", help="the cpu profile's tagger ('none': off)"
    )
    args = parser.parse_args()

    note = busy_note()
    if args.cpu_profile:
        paths = coco_images(args.images + 1, fallback=True)
        tagger = None if args.tagger.lower() == "none" else args.tagger
        result = run_cpu_profile(tagger, paths[1:], paths[0], args.device)
        n = len(paths) - 1
        per_stage = ", ".join(f"{k} {v / n * 1000:.1f}" for k, v in result["stages_s"].items())
        print(
            f"cpu profile, tagger {tagger or 'off'}, {n} images: {n / result['wall_s']:.1f} "
            f"images/s ({result['wall_s']:.1f} s, load {result['load_s']:.1f} s; "
            f"{per_stage} ms/image); {note}; {json.dumps(machine())}"
        )
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result | {"machine": machine()}, indent=2))
        return
    models = real_size_models(args.models)
    paths = coco_images(args.images + 1, fallback=True)
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
    ours = run_imgret(config, images, warmup, args.profile)
    results["imgret"] = ours
    growth = ours["rss_peak_mb"] - ours["rss_at_start_mb"]
    print(
        f"imgret:        {n / ours['wall_s']:.3f} images/s "
        f"(load {ours['load_s']:.1f} s); {breakdown(ours, n)}; "
        f"peak RSS {ours['rss_peak_mb']:.0f} MB (+{growth:.0f} while indexing)"
    )
    if not args.skip_original:
        results["speedup"] = results["original"]["wall_s"] / ours["wall_s"]
        print(f"speed-up over the original loop: {results['speedup']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
