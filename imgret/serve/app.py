"""The web app: a JSON API over one index, the page that uses it, thumbnails and photos.

Safe by default (docs/serve.md): the CLI binds 127.0.0.1 and accepts only loopback Host
headers (a page on another site that rebinds its name to 127.0.0.1 gets nothing); on any
other address every request must carry the token. Writes accept only JSON bodies, which a
cross-site form cannot send without a CORS preflight that is never granted. Only indexed
images are served, by their key in the index. Every error a request can cause is a 4xx
with a one-line message; a bug is a 500 whose details stay in the server's log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from imgret.errors import (
    BadImageError,
    BadInputError,
    EmptyIndexError,
    ImgretError,
    IndexBusyError,
    MissingFileError,
    ModelUnavailableError,
)
from imgret.index.store import ImageRow
from imgret.retrieval.searcher import Hit, Searcher, hit_from_row
from imgret.serve.explain import Explanation
from imgret.serve.guard import Guard
from imgret.serve.library import IndexedFile, Library
from imgret.serve.thumbnails import Thumbnails

log = logging.getLogger("imgret.serve")

MAX_QUERY = 1000
"""Characters; the embedder reads ~256 tokens, so a longer query is a mistake or an attack."""
MAX_K = 100
MAX_OFFSET = 5000
MAX_NOTE = 10_000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")
IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
"""What a browser shows as it is; other indexed formats (TIFF) are sent as a large JPEG."""
CACHE_CONTROL = "private, max-age=86400"
"""Photo and thumbnail URLs carry their content hash (``?v=``), so a day of reuse is safe."""
STATIC = files("imgret.serve") / "static"


class NoteIn(BaseModel):
    """``POST /api/notes``: the image's key in the index and its new note ("" removes it);
    ``query``, if given, scores the updated hit against it."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)
    text: str = Field(max_length=MAX_NOTE)
    query: str | None = Field(default=None, max_length=MAX_QUERY)


def create_app(
    index_dir: Path | str | None = None,
    searcher: Searcher | None = None,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = LOOPBACK_HOSTS,
    warm: bool = True,
) -> FastAPI:
    """The app over ``searcher`` (or a :class:`Searcher` of ``index_dir`` loaded here).

    ``token``: every request must carry it (``Authorization: Bearer``, the ``X-Imgret-Token``
    header, or the cookie the page gets from ``/?token=…``). ``allowed_hosts``: the Host
    headers accepted (None: any, for a server bound to another address behind its token).
    ``warm`` runs one query through the models so the first real one is fast.
    """
    if searcher is None:
        if index_dir is None:
            raise BadInputError("create_app needs an index folder or a loaded Searcher")
        searcher = Searcher(index_dir)
    library = Library(searcher)
    thumbnails = Thumbnails(library.index_dir)
    if warm:
        library.query_vector("a photo")
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="imgret",
        summary="Search an imgret index, see why each photo matched, fix it with a note.",
        version="1",
    )
    app.state.library = library
    app.add_middleware(Guard, token=token)
    if allowed_hosts is not None:  # outside the guard: a foreign Host gets nothing at all
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    _install_errors(app)

    def hit_json(hit: Hit, row: ImageRow, explanation: Explanation | None) -> dict[str, Any]:
        data = hit.to_dict()
        data["explanation"] = explanation.to_dict() if explanation else None
        key = quote(row.path)
        data["thumbnail_url"] = f"/thumbnails/{key}?v={row.sha256[:16]}"
        data["image_url"] = f"/images/{key}?v={row.sha256[:16]}"
        return data

    def hits_json(hits: list[Hit], query_vector: np.ndarray | None, query: str) -> dict:
        """Hits as the API gives them; explained when there is a query vector."""
        rows = library.rows([hit.relpath for hit in hits])
        hits = [hit for hit in hits if hit.relpath in rows]
        explanations: Sequence[Explanation | None] = (
            library.explain(hits, [rows[h.relpath] for h in hits], query_vector, query)
            if query_vector is not None
            else [None] * len(hits)
        )
        return {
            "hits": [
                hit_json(hit, rows[hit.relpath], why)
                for hit, why in zip(hits, explanations, strict=True)
            ]
        }

    @app.get("/api/search", summary="Rank the indexed images for a text query")
    def search(q: str = "", k: int = 20, offset: int = 0, explain: bool = True) -> dict:
        _check_page(k, offset)
        query = _check_query(q)
        hits = library.search(query, k=offset + k)[offset:]
        return hits_json(hits, library.query_vector(query) if explain else None, query)

    @app.get("/api/similar", summary="The images closest to an indexed image (more like this)")
    def similar(path: str = "", k: int = 20, offset: int = 0, explain: bool = True) -> dict:
        _check_page(k, offset)
        row = library.row(path)
        hits = library.similar(row, offset + k)[offset:]
        return hits_json(hits, row.vector if explain else None, "")

    @app.post(
        "/api/notes",
        summary="Set an image's note; it is re-embedded and returned as a hit",
        dependencies=[Depends(_json_body)],
    )
    def notes(body: NoteIn) -> dict:
        query = _check_query(body.query) if body.query else ""
        row = library.set_note(body.path, body.text)
        vector = library.query_vector(query) if query else None
        score = (
            float(np.dot(row.vector, vector))
            if vector is not None and row.vector is not None
            else 0.0
        )
        hit = hit_from_row(row, library.gallery, 0, score)
        why = library.explain([hit], [row], vector, query)[0] if vector is not None else None
        return {"hit": hit_json(hit, row, why)}

    @app.get("/api/info", summary="What the index holds: models, counts, last build")
    def info() -> dict:
        return library.info().to_dict()

    @app.get("/images/{key:path}", summary="An indexed photo", response_class=Response)
    def image(key: str, request: Request) -> Response:
        path, row = library.file(key)
        etag = f'"{_content_key(path, row)}"'
        media_type = IMAGE_TYPES.get(path.suffix.lower())
        if media_type is None:  # a format browsers do not show: a large JPEG of it
            media_type, path = (
                "image/jpeg",
                Thumbnails(library.index_dir, 2048).path(path, _content_key(path, row)),
            )
        return _file(request, path, media_type, etag)

    @app.get("/thumbnails/{key:path}", summary="A small JPEG of an indexed photo")
    def thumbnail(key: str, request: Request) -> Response:
        # The bytes themselves, not a FileResponse: a thumbnail is a few KB, and a file
        # response's own stat, open and reads would each be another hop to a thread.
        path, facts = library.file(key)
        content = _content_key(path, facts)
        etag = f'"{content}-{thumbnails.size}"'
        headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(thumbnails.read(path, content), media_type="image/jpeg", headers=headers)

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        html = (STATIC / "index.html").read_bytes()
        return Response(html, media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app


def _check_query(q: str) -> str:
    query = q.strip()
    if not query:
        raise BadInputError("the query is empty; describe what to look for in words")
    if len(query) > MAX_QUERY:
        raise BadInputError(f"the query is {len(query)} characters long; keep it under {MAX_QUERY}")
    return query


def _check_page(k: int, offset: int) -> None:
    if not 1 <= k <= MAX_K:
        raise BadInputError(f"k must be between 1 and {MAX_K} (got {k})")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadInputError(f"offset must be between 0 and {MAX_OFFSET} (got {offset})")


def _json_body(request: Request) -> None:
    """Writes take JSON only: a cross-site form cannot send it without a preflight."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, "send the body as JSON (Content-Type: application/json)")


def _content_key(path: Path, row: IndexedFile | ImageRow) -> str:
    """The indexed content hash while the file is as indexed, else its size and mtime."""
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) == (row.size, row.mtime_ns):
        return row.sha256[:32]
    return f"{stat.st_size:x}-{stat.st_mtime_ns:x}"


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in given.split(","))


def _file(request: Request, path: Path, media_type: str, etag: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


_STATUS: tuple[tuple[type[ImgretError], int], ...] = (
    (IndexBusyError, 409),
    (MissingFileError, 404),
    (BadImageError, 404),
    (EmptyIndexError, 503),
    (ModelUnavailableError, 503),
    (BadInputError, 400),
)


def _install_errors(app: FastAPI) -> None:
    """Every error as ``{"error": "one line"}``; a bug's traceback only in the log."""

    @app.exception_handler(ImgretError)
    async def imgret_error(request: Request, exc: ImgretError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
        if isinstance(exc, IndexBusyError):
            message = (
                "the index is being written by another imgret (a build?); "
                "try saving the note again when it is done"
            )
        else:
            message = str(exc)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = exc.detail if exc.status_code != 404 else "not found"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return JSONResponse({"error": "; ".join(problems)[:500]}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("error serving %s", request.url.path)
        return JSONResponse({"error": "internal error; see the server's log"}, status_code=500)
