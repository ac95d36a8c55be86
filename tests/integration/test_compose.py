"""No Docker engine runs here: check the compose file's structure."""

import yaml

from service.settings import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


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
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://:")
    assert any(e["path"] == ".env" for e in api["env_file"])
    assert "allkeys-lru" in services["redis"]["command"] and "--save" in services["redis"]["command"]
    assert (ROOT / api["build"] / "Dockerfile").exists()


def test_production_defaults() -> None:
    """Published on loopback only; production mode; every secret required (no defaults); the
    service's database role is not the owner; Redis has a password and no FLUSHALL or CONFIG."""
    services = compose()["services"]
    api, migrate, redis = services["api"], services["migrate"], services["redis"]
    assert api["ports"] == ["127.0.0.1:2080:2080"]
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
    assert "--master" in master["command"] and "http://api:2080" in master["command"]
    assert "--worker" in worker["command"] and "--master-host locust-master" in worker["command"]
    assert "127.0.0.1:8089:8089" in master["ports"]
    assert "ports" not in worker and "container_name" not in worker  # so --scale works
    for svc in (master, worker):
        assert "./loadtests:/mnt/locust:ro" in svc["volumes"]


def test_dockerfile_runs_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"-m", "service", "run"' in text and "HEALTHCHECK" in text and "USER app" in text

