"""Start the web app with uvicorn: load the index and models once, then serve until Ctrl-C."""

from __future__ import annotations

import importlib.util
import ipaddress
import secrets
import sys
import webbrowser
from pathlib import Path

from imgret.errors import MissingPackageError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    index_dir: Path | str,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    token: str | None = None,
    open_browser: bool = False,
    device: str | None = None,
    int8: bool = False,
) -> None:
    """Serve the index at ``host:port``. Off loopback a token is required (made if not given)
    and any Host header is accepted; on loopback only loopback Host headers are."""
    missing = [
        m for m in ("fastapi", "uvicorn", "fastapi_offline") if not importlib.util.find_spec(m)
    ]
    if missing:
        raise MissingPackageError(
            f"imgret serve needs {', '.join(missing)}: pip install 'imgret[serve]'"
        )
    import uvicorn

    from imgret.retrieval.searcher import Searcher
    from imgret.serve.app import LOOPBACK_HOSTS, create_app

    local = is_loopback(host)
    if not local and token is None:
        token = secrets.token_urlsafe(18)
    print(f"imgret: loading {index_dir} and its models …", file=sys.stderr)
    app = create_app(
        searcher=Searcher(index_dir, device=device, int8=int8),
        token=token,
        allowed_hosts=LOOPBACK_HOSTS if local else None,
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"imgret: ready, serving {index_dir} at {url} (Ctrl-C to stop)", file=sys.stderr)
    if open_browser:
        webbrowser.open(url)
    uvicorn.run(app, host=host, port=port, log_level="warning")
