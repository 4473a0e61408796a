"""Start the web app with uvicorn: load the index and models once, then serve until Ctrl-C."""

from __future__ import annotations

import importlib.util
import ipaddress
import secrets
import socket
import sys
import webbrowser
from pathlib import Path

from imgret.errors import BadInputError, MissingPackageError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or a message naming what to change.

    Bound before the index and models load: a port in use is said at once, and once the
    server says it is ready a client's connection waits in the backlog, never refused.
    """
    address = host.strip("[]")
    # As uvicorn binds: IPv6 for an address with a colon, else IPv4 ("localhost" is then
    # 127.0.0.1 even where the system lists ::1 first); "::" takes IPv4 too where it can.
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        socket.getaddrinfo(address, port, family, socket.SOCK_STREAM)
        # The protocol named, not left 0 as socket.create_server leaves it: asyncio turns
        # Nagle's algorithm off only on sockets that say they are TCP, and with it on every
        # response waited ~40 ms for the client's delayed ACK (bench/RESULTS.md, 13:25).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise BadInputError(f"cannot serve on {host!r}: not an address of this machine") from exc
    except OSError as exc:  # IPv6 switched off on this machine, say
        raise BadInputError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # "::" takes IPv4 too; another IPv6 address only IPv6
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(address != "::"))
        sock.bind((address, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise BadInputError(
            f"cannot serve on {host}:{port} ({exc.strerror or exc}); "
            "another server may hold the port: pass --port with another one"
        ) from exc
    return sock


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
    with listen(host, port) as listening:
        print(f"imgret: loading {index_dir} and its models …", file=sys.stderr)
        app = create_app(
            searcher=Searcher(index_dir, device=device, int8=int8),
            token=token,
            allowed_hosts=LOOPBACK_HOSTS if local else None,
        )
        bare = host.strip("[]")
        shown = f"[{bare}]" if ":" in bare else bare
        url = f"http://{shown}:{listening.getsockname()[1]}/" + (f"?token={token}" if token else "")
        print(f"imgret: ready, serving {index_dir} at {url} (Ctrl-C to stop)", file=sys.stderr)
        if open_browser:
            webbrowser.open(url)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
