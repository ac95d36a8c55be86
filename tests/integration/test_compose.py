"""No Docker engine runs here: check the compose file's structure, and validate every profile
with docker-compose (1.29, Debian's package) and the balancer's file with HAProxy itself."""

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from ops import balancer
from ops.system import ensure_tool
from service.settings import ROOT

PROFILES = ["", "pooler", "replica", "redis-cluster", "load"]
SECRETS = {"TOKEN_SECRET": "t" * 48, "POSTGRES_PASSWORD": "p", "APP_DB_PASSWORD": "a", "REDIS_PASSWORD": "r"}


def compose() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_services_healthchecks_and_wiring() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "api", "migrate"} <= set(services)
    for name in ("postgres", "redis", "api"):
        assert services[name].get("healthcheck", {}).get("test"), name
    api = services["api"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    env = api["environment"]
    assert "@${API_DB_HOST:-postgres}:${API_DB_PORT:-5432}/" in env["DATABASE_URL"]
    assert env["REDIS_URL"].startswith("redis://:")
    assert api["env_file"] == ".env"
    assert "allkeys-lru" in services["redis"]["command"] and "--save" in services["redis"]["command"]
    assert (ROOT / api["build"] / "Dockerfile").exists()


def test_production_defaults() -> None:
    """Published on loopback only; production mode; every secret required (no defaults); the
    service's database role is not the owner; Redis has a password and no FLUSHALL or CONFIG."""
    services = compose()["services"]
    api, migrate, redis = services["api"], services["migrate"], services["redis"]
    assert "ports" not in api and "container_name" not in api  # reached through lb; --scale works
    assert services["lb"]["ports"] == ["127.0.0.1:2080:2080"]
    assert all(p.startswith("127.0.0.1:") for p in services["locust-master"]["ports"])
    env = api["environment"]
    assert env["ENV"] == "production" and env["MIGRATE_ON_START"] == "false"
    assert ":?" in env["TOKEN_SECRET"]
    assert env["DATABASE_URL"].startswith("postgresql://simple_twitter_app:${APP_DB_PASSWORD:?")
    assert "MIGRATE_DATABASE_URL" not in env  # the owner's password stays out of the service
    assert migrate["environment"]["MIGRATE_DATABASE_URL"].startswith("postgresql://simple_twitter:")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    for name in ("FLUSHALL", "FLUSHDB", "CONFIG", "DEBUG"):
        assert command[command.index(name) + 1] == "", name
    assert "./sql/roles:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]


def test_distributed_locust_services() -> None:
    services = compose()["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert "--master" in master["command"] and "http://lb:2080" in master["command"]
    assert "--worker" in worker["command"] and "--master-host locust-master" in worker["command"]
    assert "127.0.0.1:8089:8089" in master["ports"]
    assert "ports" not in worker and "container_name" not in worker  # so --scale works
    for svc in (master, worker):
        assert "./loadtests:/mnt/locust:ro" in svc["volumes"]


def test_dockerfile_runs_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"-m", "service", "run"' in text and "HEALTHCHECK" in text and "USER app" in text



@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_validates_with_docker_compose(profile: str, tmp_path: Path) -> None:
    compose_cli = ensure_tool("docker-compose", "docker-compose")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.tpl", tmp_path / ".env")  # what the README tells users to start from
    args = [compose_cli, *(["--profile", profile] if profile else []), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    ok = subprocess.run(args, cwd=tmp_path, env={**env, **SECRETS}, capture_output=True, text=True,
                        check=False)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "set POSTGRES_PASSWORD in .env" in refused.stderr  # no default secrets


def test_profiles_tiers_and_what_switches_the_api_to_them() -> None:
    services = compose()["services"]
    assert services["pgbouncer"]["environment"]["POOL_MODE"] == "transaction"
    assert int(services["pgbouncer"]["environment"]["MAX_PREPARED_STATEMENTS"]) > 0
    assert "pooler" in services["pgbouncer"]["profiles"]
    assert services["postgres-replica"]["profiles"] == ["replica"]
    assert {f"redis-node-{i}" for i in (1, 2, 3)} <= set(services)
    assert all("--cluster-enabled" in services[f"redis-node-{i}"]["command"] for i in (1, 2, 3))
    env = services["api"]["environment"]
    assert "${API_DB_HOST:-postgres}" in env["DATABASE_URL"]
    assert "${API_REDIS_HOST:-redis}" in env["REDIS_URL"]
    assert env["DB_TRANSACTION_POOLER"] == "${DB_TRANSACTION_POOLER:-false}"
    assert env["DB_POOLER_PREPARED_STATEMENTS"] == "${DB_POOLER_PREPARED_STATEMENTS:-false}"
    assert "@postgres:5432/" in env["NOTICES_DATABASE_URL"]  # LISTEN needs a session: never the pooler
    assert env["REDIS_CLUSTER"] == "${REDIS_CLUSTER:-false}"
    assert "pg_basebackup" in (ROOT / "deploy" / "replica-entrypoint.sh").read_text()
    assert "replication" in (ROOT / "sql" / "roles" / "20-replication.sh").read_text()
    for script in ("deploy/replica-entrypoint.sh", "sql/roles/20-replication.sh"):
        assert os.access(ROOT / script, os.X_OK), script


def test_the_balancers_files_are_the_services_own(tmp_path: Path) -> None:
    """deploy/haproxy is what ops/balancer.py writes, and HAProxy accepts it."""
    folder = ROOT / "deploy" / "haproxy"
    assert (folder / "haproxy.cfg").read_text() == balancer.compose_config()
    for status in balancer.ERRORS:
        assert (folder / "errors" / f"{status}.http").read_bytes() == balancer.error_page(status)
    config = tmp_path / "haproxy.cfg"  # checked here with the error pages where this machine has them
    here = balancer.compose_config().replace("/usr/local/etc/haproxy/errors", str(folder / "errors"))
    config.write_text(here)
    checked = subprocess.run([ensure_tool("haproxy", "haproxy"), "-c", "-f", str(config)],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
