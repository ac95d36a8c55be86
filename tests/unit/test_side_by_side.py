"""make bench runs the service and the peer stacks side by side: every member of a group gets its
own port (two servers on one port would share its connections through SO_REUSEPORT), and every
server's database pool fits with the others' in PostgreSQL's connections."""

from bench.harness import BENCH_ENV, Server, bench_settings
from bench.load import Config, server_for


def test_each_member_listens_on_its_own_port() -> None:
    members = [Config("default"), Config("bare Sanic", peer="bare-sanic"), Config("fastapi", peer="fastapi"),
               Config("cache off", {"CACHE_ENABLED": "false"})]
    servers = [server_for(config, i)[0] for i, config in enumerate(members)]
    ports = [s.port for s in servers]
    assert ports[0] == int(BENCH_ENV["PORT"]) and len(set(ports)) == len(ports)
    fastapi = servers[2]
    assert isinstance(fastapi, Server)
    assert fastapi.command[fastapi.command.index("--port") + 1] == str(ports[2])  # uvicorn's own flag
    assert all(isinstance(s, Server) and s.cpus == "0" for s in servers)  # one CPU for all, in turn


def test_the_pools_of_a_group_fit_in_postgres() -> None:
    # the service, fastapi, node and gevent hold database connections; PostgreSQL allows 100, 3 reserved
    assert 4 * bench_settings().pool_max <= 97
