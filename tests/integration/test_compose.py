"""No Docker engine runs here: check the compose file's structure."""

import yaml

from service.settings import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_healthchecks_and_wiring() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "api"} <= set(services)
    for name in ("postgres", "redis", "api"):
        assert services[name].get("healthcheck", {}).get("test"), name
    api = services["api"]
    assert "2080:2080" in api["ports"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    env = api["environment"]
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://redis:")
    assert any(e["path"] == ".env" for e in api["env_file"])
    assert "allkeys-lru" in services["redis"]["command"] and "--save" in services["redis"]["command"]
    assert (ROOT / api["build"] / "Dockerfile").exists()


def test_distributed_locust_services() -> None:
    services = compose()["services"]
    master, worker = services["locust-master"], services["locust-worker"]
    assert "--master" in master["command"] and "http://api:2080" in master["command"]
    assert "--worker" in worker["command"] and "--master-host locust-master" in worker["command"]
    assert "8089:8089" in master["ports"]
    assert "ports" not in worker and "container_name" not in worker  # so --scale works
    for svc in (master, worker):
        assert "./loadtests:/mnt/locust:ro" in svc["volumes"]


def test_dockerfile_runs_the_service() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '"-m", "service", "run"' in text and "HEALTHCHECK" in text and "USER app" in text

