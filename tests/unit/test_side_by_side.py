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


def test_each_member_of_a_side_by_side_group_has_redis_keys_and_channels_of_its_own() -> None:
    from bench.harness import bench_settings, own_keys
    from service.settings import Settings

    prefixes = {own_keys({"PORT": str(2090 + i)}, i).get("CACHE_PREFIX", bench_settings().cache.cache_prefix)
                for i in range(4)}
    assert len(prefixes) == 4  # no member hears another's invalidations or asks for its acknowledgement
    assert own_keys({"PORT": "2090"}, 0) == {"PORT": "2090"}  # the first keeps the bench's own
    for prefix in prefixes:
        assert Settings.from_env({"CACHE_PREFIX": prefix}).cache.cache_prefix == prefix
