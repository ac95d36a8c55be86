"""N single-process instances of the service behind HAProxy: `python -m ops balancer up`
(`make cluster`).

Each instance is `python -m ops run` with WORKERS=1 on its own loopback port, all sharing one
PostgreSQL and one Redis (the embedded stack, or DATABASE_URL / REDIS_URL); HAProxy (Debian's
package, installed like the project's other servers) listens on HOST:PORT and spreads requests.

Timeouts, ordered so no side reuses a connection the other has closed:
- HAProxy to an instance: HAProxy keeps idle connections for reuse and purges them every
  second (half of them each time), long before an instance's own keep-alive timeout
  (KEEP_ALIVE_TIMEOUT, 30 s), so HAProxy never sends on a connection the instance has closed.
- Clients to HAProxy: an idle client connection is kept 20 s, a request must arrive within
  REQUEST_TIMEOUT, and HAProxy waits up to 15 s for an instance's answer (its own deadlines are
  shorter: a request's database work is cut at DB_STATEMENT_TIMEOUT).
- An instance stopping (SIGTERM) answers /ready with 503 during its drain: HAProxy checks every
  250 ms and stops sending to it; the instance keeps taking requests until a check has heard the
  503 (however late it comes, up to 5 s) and SHUTDOWN_DRAIN_SECONDS more, so no request HAProxy
  sends meanwhile, on a new or a reused connection, meets a closed one. A request it can no
  longer connect to is sent to another instance (`option redispatch`: nothing was sent, so a
  retry cannot write twice).
- No instance up: HAProxy answers with the service's own JSON 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ops import pgbouncer, redis_cluster, replica, stack
from ops.hosts import Hosts
from ops.process import SERVICE_RUN, ServiceProcess, terminate
from ops.system import StackError, ensure_tool, port_open
from service.db.migrate import migrate
from service.errors import error_code
from service.http.writer import head
from service.settings import Settings

CLIENT_KEEP_ALIVE = 20  # seconds HAProxy keeps an idle client connection
SERVER_TIMEOUT = 15  # seconds HAProxy waits for an instance's answer
CHECK_INTERVAL_MS = 250
# HAProxy's own answers, in the service's JSON shape (its codes from service/errors.py):
# (reason, message).
ERRORS = {
    400: ("Bad Request",
          "malformed HTTP request (bytes outside ASCII in the request line must be percent-encoded)"),
    408: ("Request Timeout", "the request did not arrive in time"),
    502: ("Bad Gateway", "an instance failed to answer; retry shortly"),
    503: ("Service Unavailable", "no instance of the service is taking requests; retry shortly"),
    504: ("Gateway Timeout", "no answer from an instance in time; retry shortly"),
}


def folder(settings: Settings) -> Path:
    return settings.data_dir / "cluster"


def instance_ports(settings: Settings, instances: int, base_port: int = 0) -> list[int]:
    """Loopback ports of the instances: base_port, base_port + 1, ... (default PORT + 100)."""
    first = base_port or settings.port + 100
    return list(range(first, first + instances))


def haproxy_config(settings: Settings, targets: list[str], directory: Path) -> str:
    """The balancer of `make cluster`: fixed instances (address:port), a stats socket for the tests."""
    return balancer_config(
        bind=f"{settings.host}:{settings.port}", errors=str(directory),
        request_timeout=settings.http.request_timeout,
        servers="\n".join(f"    server i{n} {target}" for n, target in enumerate(targets, 1)),
        process=f"    pidfile {directory}/haproxy.pid\n"
                f"    stats socket {directory}/haproxy.sock mode 600 level admin\n")


def compose_config() -> str:
    """deploy/haproxy/haproxy.cfg, compose's balancer: the api replicas found through Docker's DNS, so
    `docker compose up --scale api=N` needs no edit (a test keeps the file equal to this)."""
    return balancer_config(
        bind=":2080", errors="/usr/local/etc/haproxy/errors", request_timeout=Settings().http.request_timeout,
        servers="    server-template api 16 api:2080 resolvers docker init-addr none", process="") + (
        "\nresolvers docker\n    nameserver dns 127.0.0.11:53\n    hold valid 5s\n")


def balancer_config(*, bind: str, errors: str, request_timeout: float, servers: str, process: str) -> str:
    errorfiles = "\n".join(f"    errorfile {status} {errors}/{status}.http" for status in ERRORS)
    return f"""# Written by ops/balancer.py; its docstring explains the timeouts.
global
    maxconn 4096
{process}
defaults
    mode http
    option http-keep-alive
    # Bytes outside ASCII in a URL (a client that sends ?tag=café unencoded), and header names
    # with a space, tab or NUL, pass on to the instance, which answers as it would directly (its
    # JSON 400, or the header read as an unknown one); HAProxy's strict parser would answer them
    # with an HTML 400 that no errorfile replaces. Kept by measurement: the hostile-request corpus
    # (tests/integration/test_framing_balancer.py) is answered alike through this balancer with
    # the instance's protocol front on and off, and neither this option nor strictness changes
    # how HAProxy frames a request (Content-Length, Transfer-Encoding): strict, 8 of 274 cases
    # became HTML 400s and none framed differently; lenient, 0 of 274 differ and no response ever
    # reached another client (200 attempts at hiding a request in a body).
    option accept-invalid-http-request
    timeout connect 1s
    timeout client {SERVER_TIMEOUT + 5}s
    timeout http-request {request_timeout:g}s
    timeout http-keep-alive {CLIENT_KEEP_ALIVE}s
    timeout server {SERVER_TIMEOUT}s
    timeout queue 5s
    timeout check 1s
    retries 3
    option redispatch 1
    http-reuse safe
{errorfiles}

frontend api
    bind {bind}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /ready
    http-check expect status 200
    default-server check inter {CHECK_INTERVAL_MS}ms fall 1 rise 2 pool-purge-delay 1s
{servers}
"""


def error_page(status: int) -> bytes:
    """One of HAProxy's own answers as a whole HTTP response: the service's JSON error body, its
    head by the service's one head writer."""
    _, message = ERRORS[status]
    body = json.dumps({"code": error_code(status), "message": message}).encode()
    retry = b"Retry-After: 1\r\n" if status in (502, 503, 504) else b""
    return head(status, retry + b"Cache-Control: no-store\r\n", None, len(body), False, body=body)


@dataclasses.dataclass
class Balancer:
    """The instances and the balancer; the tests hold one to stop an instance under load."""

    settings: Settings  # resolved (ops.stack.resolve): every instance gets the same URLs and secret
    ports: list[int]
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # extra settings for every instance
    instances: list[ServiceProcess] = dataclasses.field(default_factory=list)
    record: bool = False  # the one `make cluster` runs: recorded for `cluster down` and `status`
    haproxy_pid: int | None = None
    # Each instance on a test host of its own (ops/hosts.py), i1, i2, ..., HAProxy on the machine;
    # the settings' URLs are then the ones the hosts reach (forwarders on the gateway).
    hosts: Hosts | None = None

    @property
    def directory(self) -> Path:
        """Its own files (config, pid, socket, logs), apart from any other balancer's."""
        return folder(self.settings) / str(self.settings.port)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def address(self, n: int) -> str:
        """Where the n-th instance (from 1) listens."""
        return "127.0.0.1" if self.hosts is None else self.hosts.addresses[f"i{n}"]

    def instance(self, n: int, port: int) -> ServiceProcess:
        env, log = self.instance_env(port, self.address(n)), self.directory / f"instance-{port}.log"
        if self.hosts is None:
            return ServiceProcess(env, log)
        inside = self.hosts.command(f"i{n}", SERVICE_RUN)
        return ServiceProcess(env, log, host=self.address(n), command=inside)

    def instance_env(self, port: int, host: str = "127.0.0.1") -> dict[str, str]:
        s = self.settings
        return {"PORT": str(port), "HOST": host, "WORKERS": "1", "MIGRATE_ON_START": "false",
                "DATABASE_URL": s.db.database_url, "REDIS_URL": s.cache.redis_url,
                "TOKEN_SECRET": s.token_secret,
                "DB_TRANSACTION_POOLER": str(s.db.db_transaction_pooler).lower(),
                "DB_POOLER_PREPARED_STATEMENTS": str(s.db.db_pooler_prepared_statements).lower(),
                "NOTICES_DATABASE_URL": s.notices_url(),
                "REPLICA_DATABASE_URL": s.db.replica_database_url,
                "REDIS_CLUSTER": str(s.cache.redis_cluster).lower(),
                **self.env}

    def start(self) -> Balancer:
        haproxy = ensure_tool("haproxy", "haproxy")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if port_open(self.settings.port):
            raise StackError(f"port {self.settings.port} is taken: stop what runs there (make stop) "
                                   "or set PORT")
        if self.hosts is not None:
            for n in range(1, len(self.ports) + 1):
                if f"i{n}" not in self.hosts.addresses:
                    self.hosts.add(f"i{n}")
        self.instances = [self.instance(n, port) for n, port in enumerate(self.ports, 1)]
        with ThreadPoolExecutor(len(self.instances)) as pool:  # started side by side
            failures = [f for f in [pool.submit(p.start) for p in self.instances] if f.exception()]
        if failures:
            self.stop()
            raise StackError(f"an instance did not start: {failures[0].exception()}")
        for status in ERRORS:
            (self.directory / f"{status}.http").write_bytes(error_page(status))
        config = self.directory / "haproxy.cfg"
        targets = [f"{self.address(n)}:{port}" for n, port in enumerate(self.ports, 1)]
        config.write_text(haproxy_config(self.settings, targets, self.directory))
        checked = subprocess.run([haproxy, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode:
            self.stop()
            raise StackError(f"haproxy rejected {config}: {checked.stderr}")
        started = subprocess.run([haproxy, "-D", "-f", str(config)], capture_output=True, text=True,
                                 cwd=self.directory)
        if started.returncode:
            self.stop()
            raise StackError(f"haproxy did not start: {started.stderr}")
        self.haproxy_pid = int((self.directory / "haproxy.pid").read_text().split()[0])
        if self.record:
            self.write_state()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = self.server_states()
            if len(states) == len(self.ports) and all(state == "UP" for state in states.values()):
                return self
            time.sleep(0.1)
        states = self.server_states()
        self.stop()
        raise StackError(f"HAProxy does not see every instance up within 30 s: {states}")

    def write_state(self) -> None:
        state = {"url": self.url, "directory": str(self.directory), "haproxy_pid": self.haproxy_pid,
                 "instances": {str(p.env["PORT"]): p.pid for p in self.instances if p.proc is not None}}
        (folder(self.settings) / "state.json").write_text(json.dumps(state))

    def server_states(self) -> dict[str, str]:
        return server_states(self.directory)

    def stop(self) -> None:
        if self.haproxy_pid is not None:
            terminate(self.haproxy_pid, grace=5)
            self.haproxy_pid = None
        for process in self.instances:
            process.stop()
        if self.record:
            (folder(self.settings) / "state.json").unlink(missing_ok=True)

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def admin(directory: Path, command: str) -> str:
    """One command on HAProxy's stats socket (e.g. `show stat`)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(directory / "haproxy.sock"))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def server_states(directory: Path) -> dict[str, str]:
    """Each instance's state as HAProxy sees it (UP, DOWN, ...); empty when HAProxy is not running."""
    try:
        lines = admin(directory, "show stat").splitlines()
    except OSError:
        return {}
    head = lines[0].lstrip("# ").split(",")
    rows = [dict(zip(head, line.split(","), strict=False)) for line in lines[1:] if line]
    return {r["svname"]: r["status"].split(" ")[0] for r in rows
            if r["pxname"] == "instances" and r["svname"] not in ("BACKEND", "FRONTEND")}


def up(settings: Settings, instances: int, base_port: int = 0, with_pooler: bool = False,
       with_replica: bool = False, with_redis_cluster: bool = False) -> Balancer:
    """Stack up, migrations applied once, N instances and HAProxy started in the background;
    with_pooler: the instances reach PostgreSQL through the stack's PgBouncer; with_replica:
    searches that miss the cache may read the stack's streaming replica; with_redis_cluster: the
    cache is a Redis Cluster of three masters (ops/pgbouncer.py, replica.py, redis_cluster.py)."""
    if stack.embedded(settings):
        stack.up(settings)
    resolved = stack.resolve(settings)
    asyncio.run(migrate(settings.db.migrate_database_url or resolved.db.database_url))
    down(settings)
    if (with_pooler or with_replica) and settings.db.database_url:
        raise StackError("--pooler and --replica start them beside the embedded PostgreSQL: "
                         "with DATABASE_URL set, set DB_TRANSACTION_POOLER, REPLICA_DATABASE_URL")
    if with_redis_cluster and settings.cache.redis_url:
        raise StackError("--redis-cluster starts one beside the embedded Redis: with REDIS_URL set, "
                         "set REDIS_CLUSTER=true")
    if with_redis_cluster:
        resolved = resolved.replaced(redis_url=redis_cluster.start(settings),
                                       redis_cluster=True)
    if with_pooler:
        direct = resolved.notices_url()  # PostgreSQL itself: the notices' session
        resolved = resolved.replaced(database_url=pgbouncer.start(settings),
                                       db_transaction_pooler=True, db_pooler_prepared_statements=True,
                                       notices_database_url=direct)
    if with_replica:
        resolved = resolved.replaced(replica_database_url=replica.start(settings))
    balancer = Balancer(resolved, instance_ports(settings, instances, base_port), record=True)
    return balancer.start()


def down(settings: Settings) -> str:
    """Stop a cluster started by `up`: HAProxy, then every instance (SIGTERM: each drains)."""
    directory = folder(settings)
    state_file = directory / "state.json"
    if not state_file.exists():
        return "not running"
    state = json.loads(state_file.read_text())
    terminate(state.get("haproxy_pid"), grace=5)
    for pid in state["instances"].values():
        terminate(pid, group=True, grace=30)  # each drains, then stops
    state_file.unlink()
    return f"stopped HAProxy and {len(state['instances'])} instances"


def status(settings: Settings) -> dict[str, object]:
    directory = folder(settings)
    if not (directory / "state.json").exists():
        return {"balancer": "down"}
    state = json.loads((directory / "state.json").read_text())
    return {"balancer": state["url"],
            "instances": server_states(Path(state["directory"])) or "HAProxy not answering"}


def instance_urls(settings: Settings, url: str) -> list[str]:
    """The instances behind the balancer `make cluster` runs at url; [url] when none runs there
    (a scrape of /metrics through the balancer reaches one instance only)."""
    state_file = folder(settings) / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if state["url"] == url.rstrip("/"):
            return [f"http://127.0.0.1:{port}" for port in state["instances"]]
    return [url]
