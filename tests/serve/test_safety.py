"""The web app's guards: only indexed files, the token, loopback Host headers, JSON-only writes,
and a 4xx with a message (never a 500) for every bad request."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imgret.config import Config
from imgret.index.build import build_index
from imgret.index.store import Store
from imgret.serve.app import create_app
from tests.support.galleries import coco_images
from tests.support.shared_data import COCO_SAMPLE, NEEDS_MINILM, needs_shared

pytestmark = [
    pytest.mark.slow,
    needs_shared(COCO_SAMPLE),
    NEEDS_MINILM,
]
SECRET = "not for the web"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Path:
    """Two photos and ``escape.jpg``, a symlink to a photo outside the gallery (indexed, since
    builds follow symlinked files), with a secret file beside the gallery; MiniLM alone."""
    root = tmp_path_factory.mktemp("guarded")
    gallery = root / "gallery"
    gallery.mkdir()
    outside = root / "outside.jpg"
    first, second, third = coco_images(3)
    shutil.copy(first, gallery / "bus.jpg")
    shutil.copy(second, gallery / "other.jpg")
    shutil.copy(third, outside)
    (gallery / "escape.jpg").symlink_to(outside)
    (root / "secret.txt").write_text(SECRET)
    config = Config(captioner=None, detector=None, topics=None, embedder="minilm", device="cpu")
    build_index(gallery, root / "index", config, progress=False)
    with Store.open(root / "index", readonly=True) as store:
        assert {row.path for row in store.rows()} == {"bus.jpg", "other.jpg", "escape.jpg"}
    return root / "index"


@pytest.fixture(scope="module")
def web(guarded) -> TestClient:
    return TestClient(create_app(guarded), base_url="http://127.0.0.1")


@pytest.mark.parametrize(
    "url",
    [
        "/images/%2e%2e%2fsecret.txt",
        "/images/%2e%2e/secret.txt",
        "/images/..%2fsecret.txt",
        "/images/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/images/%2Fetc%2Fpasswd",
        "/images//etc/passwd",
        "/images/sub/..%2fbus.jpg",
        "/images/%2e/bus.jpg",
        "/images/BUS.JPG",
        "/images/escape.jpg",
        "/thumbnails/escape.jpg",
        "/thumbnails/%2e%2e%2fsecret.txt",
        "/images/index.sqlite3",
        "/static/..%2f__init__.py",
        "/static/%2e%2e/app.py",
        "/index.sqlite3",
    ],
)
def test_only_indexed_files_inside_the_gallery_are_served(web, url):
    response = web.get(url)
    assert response.status_code == 404, response.text
    assert SECRET not in response.text and "SQLite" not in response.text
    assert "error" in response.json()


def test_an_absolute_path_is_not_a_key(web, guarded):
    with Store.open(guarded, readonly=True) as store:
        gallery = store.gallery
    assert gallery is not None
    assert web.get(f"/images/{gallery / 'bus.jpg'}").status_code == 404
    assert web.get("/images/bus.jpg").status_code == 200


def test_every_request_needs_the_token_when_one_is_set(guarded):
    app = create_app(guarded, token="s3cret", allowed_hosts=None, warm=False)
    stranger = TestClient(app, base_url="http://192.168.1.20:8765")
    for url in (
        "/",
        "/api/search?q=a+bus",
        "/api/info",
        "/images/bus.jpg",
        "/docs",
        "/openapi.json",
        "/static/app.js",
        "/thumbnails/bus.jpg",
    ):
        response = stranger.get(url)
        assert response.status_code == 401, url
        assert "token" in response.json()["error"]
    assert stranger.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert stranger.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert stranger.get("/api/info", headers={"X-Imgret-Token": "s3cret"}).status_code == 200
    refused = stranger.post("/api/notes", json={"path": "bus.jpg", "text": "x"})
    assert refused.status_code == 401

    person = TestClient(app, base_url="http://192.168.1.20:8765")
    page = person.get("/?token=s3cret")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"].lower()
    assert "imgret_token=s3cret" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert person.get("/images/bus.jpg").status_code == 200  # the page's <img> requests


def test_only_loopback_host_headers_by_default(web):
    assert web.get("/api/info", headers={"Host": "evil.example"}).status_code == 400
    assert web.get("/api/info", headers={"Host": "localhost:8765"}).status_code == 200


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "text/plain"}, '{"path": "bus.jpg", "text": "x"}', 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "path=bus.jpg&text=x", 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "--x--", 415),
        ({}, '{"path": "bus.jpg", "text": "x"}', 415),
        ({"Content-Type": "application/json"}, "{", 422),
        ({"Content-Type": "application/json"}, "[]", 422),
        ({"Content-Type": "application/json"}, '{"path": "bus.jpg"}', 422),
        ({"Content-Type": "application/json"}, '{"path": "bus.jpg", "text": 3}', 422),
        ({"Content-Type": "application/json"}, '{"path": "bus.jpg", "text": "x", "y": 1}', 422),
        (
            {"Content-Type": "application/json"},
            '{"path": "bus.jpg", "text": "' + "x" * 20000 + '"}',
            422,
        ),
        ({"Content-Type": "application/json"}, '{"path": "nope.jpg", "text": "x"}', 404),
        ({"Content-Type": "application/json"}, '{"path": "../secret.txt", "text": "x"}', 404),
        ({"Content-Type": "application/json"}, '{"path": "", "text": "x"}', 422),
    ],
)
def test_bad_note_requests_change_nothing(web, guarded, headers, body, status):
    response = web.post("/api/notes", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    with Store.open(guarded, readonly=True) as store:
        assert store.notes() == {}


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/api/search", 400, "empty"),
        ("/api/search?q=%20%20", 400, "empty"),
        ("/api/search?q=" + "a" * 60_000, 400, "keep it under"),  # httpx stops at 64 KiB
        ("/api/search?q=bus&k=0", 400, "k must be"),
        ("/api/search?q=bus&k=101", 400, "k must be"),
        ("/api/search?q=bus&k=-3", 400, "k must be"),
        ("/api/search?q=bus&k=ten", 422, "k"),
        ("/api/search?q=bus&offset=-1", 400, "offset"),
        ("/api/search?q=bus&offset=99999999999", 400, "offset"),
        ("/api/search?q=bus&explain=perhaps", 422, "explain"),
        ("/api/similar", 404, "not an image"),
        ("/api/similar?path=..%2fsecret.txt", 404, "not an image"),
        ("/api/similar?path=bus.jpg&k=1000", 400, "k must be"),
        ("/api/nothing", 404, "not found"),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message(web, url, status, message):
    response = web.get(url)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_wrong_methods_are_refused(web):
    assert web.get("/api/notes").status_code == 405
    assert web.put("/api/notes", json={"path": "bus.jpg", "text": "x"}).status_code == 405
    assert web.post("/api/search?q=bus").status_code == 405


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/api/info", "application/json"),
        ("/images/bus.jpg", "image/jpeg"),
        ("/thumbnails/bus.jpg", "image/jpeg"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/images/nope.jpg", "application/json"),
    ],
)
def test_strict_content_types_nosniff_and_a_csp_everywhere(web, url, kind):
    response = web.get(url)
    assert response.headers["content-type"] == kind
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "access-control-allow-origin" not in response.headers


def test_no_cors_preflight_is_granted(web):
    preflight = web.options(
        "/api/notes",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
