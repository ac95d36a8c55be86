"""The peer stacks the benchmarks compare the service with, each serving the same routes over the
same PostgreSQL, Redis, data and settings: how to start each one.

- fastapi: FastAPI on uvicorn (uvloop + httptools) running the service's own timeline code;
- granian: Granian (Rust HTTP server) calling a plain RSGI app on the same code
  (bench/peers/granian_app.py);
- blacksheep: BlackSheep on uvicorn (uvloop + httptools) on the same code
  (bench/peers/blacksheep_app.py);
- node: Fastify, pg and ioredis (bench/peers/node/server.js) with the same cache design, the
  service's SQL and Redis scripts handed over in a spec file written here;
- gevent: a WSGI app on gevent's server with psycopg 3 and redis-py (bench/peers/gevent_app.py),
  the same cache design, SQL and scripts;
- bare-sanic: /ping alone on a bare Sanic app (bench/peers/bare_sanic.py), the framework's floor;
- bare-protocol: one page's bytes from a bare uvloop protocol with httptools
  (bench/peers/bare_protocol.py), the hit path's limit in Python on this loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ops import stack
from ops.system import ensure_tool
from service.cache.tags import ADD, FILL
from service.db import tweets
from service.settings import ROOT, Settings

PEERS = ("fastapi", "granian", "blacksheep", "node", "gevent")
SECRETS = frozenset({"DATABASE_URL", "REDIS_URL", "TOKEN_SECRET"})  # handed to a peer, never recorded
PORT = 2091
NODE_DIR = ROOT / "bench" / "peers" / "node"


def ensure_node() -> str:
    """node on PATH and the peer's packages installed (npm ci, from the committed lock file)."""
    node = ensure_tool("node", "nodejs", "npm")
    ensure_tool("npm", "npm")
    if not (NODE_DIR / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_DIR, check=True)
    return node


def node_spec(settings: Settings) -> Path:
    """The statements, scripts and settings the Node.js peer serves with: the service's own."""
    path = settings.data_dir / "node-peer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "post": tweets.POST, "search_rows": tweets.SEARCH_ROWS[True], "search_page": tweets.SEARCH_PAGE[True],
        "fill_script": FILL, "add_script": ADD, "cache_prefix": settings.cache.cache_prefix,
        "cache_size": settings.cache.cache_tag_size, "cache_ttl_ms": settings.cache.cache_ttl_seconds * 1000,
        "local_cache_ttl": settings.cache.local_cache_ttl, "pool_max": settings.pool_max}))
    return path


def command(peer: str, settings: Settings, workers: int, port: int = PORT) -> tuple[list[str], dict[str, str]]:
    """(the command, extra environment) that serves the peer on port."""
    if peer in ("fastapi", "blacksheep"):
        return ([sys.executable, "-m", "uvicorn", f"bench.peers.{peer}_app:app", "--loop", "uvloop", "--http",
                 "httptools", "--no-access-log", "--log-level", "warning", "--backlog", "1024", "--port",
                 str(port), "--workers", str(workers)], {"PORT": str(port)})
    if peer == "granian":
        return ([sys.executable, "-m", "granian", "--interface", "rsgi", "--loop", "uvloop", "--no-access-log",
                 "--log-level", "warning", "--backlog", "1024", "--port", str(port), "--workers", str(workers),
                 "bench.peers.granian_app:app"], {"PORT": str(port)})
    if peer in ("bare-sanic", "bare-protocol"):
        return [sys.executable, "-m", f"bench.peers.{peer.replace('-', '_')}"], {"PORT": str(port)}
    if peer not in ("node", "gevent"):
        raise ValueError(f"unknown peer {peer!r}: one of {', '.join(PEERS)}")
    if workers != 1:
        raise ValueError(f"the {peer} peer runs one process")
    # Not the service: it cannot resolve the embedded stack itself, so it is handed the URLs.
    resolved = stack.resolve(settings)
    env = {"PORT": str(port), "DATABASE_URL": resolved.db.database_url, "REDIS_URL": resolved.cache.redis_url,
           "TOKEN_SECRET": resolved.token_secret}
    if peer == "node":
        return [ensure_node(), str(NODE_DIR / "server.js")], {**env, "PEER_SPEC": str(node_spec(resolved))}
    return [sys.executable, "-m", "bench.peers.gevent_app"], env
