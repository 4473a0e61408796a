"""The original framework's plain arrays, for anyone who wants numpy files and no SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imgret.errors import BadInputError, EmptyIndexError
from imgret.index.store import Store


def export_arrays(store: Store, out_dir: Path | str) -> list[Path]:
    """Write the original's plain arrays: ``feature_matrix.npy`` and ``paths.json``.

    Row i of the matrix is the image at ``paths[i]`` (absolute paths, as the original
    kept them); only vectors of the index's current embedder are written.
    """
    config = store.config()
    paths, matrix = store.vectors(config.embedder if config else None)
    if not paths:
        raise EmptyIndexError(
            f"the index in {store.index_dir} holds no images; run `imgret index GALLERY "
            f"--index {store.index_dir}` first"
        )
    gallery = store.gallery or Path(".")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"--out {out_dir} is a file; give the folder to write the arrays in")
    matrix_file, paths_file = out_dir / "feature_matrix.npy", out_dir / "paths.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        np.save(matrix_file, matrix)
        paths_file.write_text(json.dumps([(gallery / p).as_posix() for p in paths], indent=1))
    except OSError as exc:
        raise BadInputError(
            f"cannot write {out_dir} ({exc.strerror or exc}); give a writable --out folder"
        ) from None
    return [matrix_file, paths_file]
