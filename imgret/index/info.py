"""What an index holds, for ``imgret info``, the notebooks and the web app's about panel."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgret.index.search_cache import CACHE_DIR
from imgret.index.store import DB_NAME, Store, db_path


@dataclass
class IndexInfo:
    """What an index holds, for ``imgret info``."""

    index_dir: Path
    gallery: str | None
    format_version: int
    images: int
    embedded: int
    dimension: int | None
    notes: int
    skipped: int
    stages: dict[str, Any]
    created: float | None
    updated: float | None
    last_full_check: float | None
    """When ``imgret index --rehash`` last hashed every file and checked every vector."""
    file_bytes: int
    cache_bytes: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["index_dir"] = str(self.index_dir)
        return data

    def summary(self) -> str:
        def when(stamp: float | None) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp)) if stamp else "-"

        lines = [
            f"index     {self.index_dir} (format {self.format_version}, "
            f"{self.file_bytes / 1e6:.1f} MB; search cache {self.cache_bytes / 1e6:.1f} MB)",
            f"gallery   {self.gallery or '-'}",
            f"images    {self.images} ({self.embedded} searchable with the current embedder, "
            f"dimension {self.dimension or '-'})",
            f"notes     {self.notes}",
            f"skipped   {self.skipped} bad file(s)",
            f"created   {when(self.created)}   updated {when(self.updated)}",
            f"checked   {when(self.last_full_check) if self.last_full_check else 'never'} "
            "(every file hashed, every vector checked: imgret index --rehash)",
        ]
        for stage, entry in self.stages.items():
            revision = f" @ {entry['revision']}" if entry.get("revision") else ""
            lines.append(f"{stage:<9} {entry['model']}{revision}")
        return "\n".join(lines)


def index_info(store: Store) -> IndexInfo:
    """The facts of an open index: counts, models, dates and the bytes it takes on disk."""
    meta = store.meta()
    config = store.config()
    embedded = store.count_where("images", config.embedder if config else None)
    files = [db_path(store.index_dir), *store.index_dir.glob(DB_NAME + "-*")]
    cache = store.index_dir / CACHE_DIR
    return IndexInfo(
        index_dir=store.index_dir,
        gallery=meta.get("gallery"),
        format_version=meta["format_version"],
        images=store.count(),
        embedded=embedded,
        dimension=meta.get("dimension"),
        notes=store.count_where("notes"),
        skipped=store.count_where("skipped"),
        stages=meta.get("stages", {}),
        created=meta.get("created"),
        updated=meta.get("updated"),
        last_full_check=meta.get("last_full_check"),
        file_bytes=sum(f.stat().st_size for f in files if f.exists()),
        cache_bytes=sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()),
    )
