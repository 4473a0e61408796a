"""A grid of search hits: the image, its rank and score, and the description that matched.

A hit list is only convincing when you can see it, so the CLI (``--plot``) and the retrieval
notebook draw the same figure.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from imgret.errors import BadInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from imgret.retrieval.searcher import Hit


def plot_target(path: str | Path) -> Path:
    """The file a plot given as ``path`` is written to: ``search.png`` inside a folder, and
    ``.png`` added to a name without a suffix (as matplotlib would do, silently)."""
    path = Path(path)
    if path.is_dir():
        return path / "search.png"
    return path if path.suffix else path.with_name(path.name + ".png")


def plot_hits(
    hits: Sequence[Hit],
    path: str | Path | None = None,
    *,
    query: str | None = None,
    columns: int = 5,
    thumb_size: int = 384,
    wrap: int = 38,
) -> Figure:
    """Draw ``hits`` as a grid; save it to :func:`plot_target` of ``path`` when given (any
    format matplotlib knows)."""
    from matplotlib.figure import Figure

    if not hits:
        raise BadInputError("there are no hits to plot: lower --min-score or check the query")
    columns = max(1, min(columns, len(hits)))
    rows = math.ceil(len(hits) / columns)
    figure = Figure(figsize=(3.2 * columns, 4.2 * rows), layout="constrained")
    if query:
        figure.suptitle(f"“{query}”", fontsize=13)
    for i, hit in enumerate(hits):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(_thumbnail(Path(hit.path), thumb_size))
        axes.set_axis_off()
        axes.set_title(f"#{hit.rank}  score {hit.score:.3f}", fontsize=10)
        caption = textwrap.shorten(hit.description or "", width=wrap * 4, placeholder=" …")
        axes.text(
            0.5,
            -0.02,
            "\n".join(textwrap.wrap(caption, wrap)),
            transform=axes.transAxes,
            ha="center",
            va="top",
            fontsize=7,
        )
    if path is not None:
        target = plot_target(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(target, dpi=100)
        except ValueError as exc:  # matplotlib: an unknown format
            raise BadInputError(f"cannot save the plot as {target}: {exc}; use .png") from None
        except OSError as exc:
            raise BadInputError(
                f"cannot write the plot {target} ({exc.strerror or exc}); give a writable "
                "--plot FILE.png"
            ) from None
    return figure


def _thumbnail(path: Path, size: int) -> Image.Image:
    """The image as shown to a person (EXIF-rotated, RGB); a grey tile if it is gone."""
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            return image
    except OSError:
        return Image.new("RGB", (size, size), (200, 200, 200))
