"""The service in the background for `make locust` / `make loadtest` (`python -m ops start|stop`),
and where the Locust web UI listens."""

from __future__ import annotations

from ops.process import ServiceError, ServiceProcess, answers, terminate
from ops.system import StackError
from service.settings import Settings

LOCUST_UI_PORT = 8089  # the Locust web UI of `make locust` (loadtests/run.py)


def start(settings: Settings) -> str:
    """Run the service in the background (pid and log in DATA_DIR); returns its URL."""
    url = f"http://{settings.host}:{settings.port}"
    if answers(url):
        return url
    service = ServiceProcess({"PORT": str(settings.port)}, settings.data_dir / "service.log",
                             host=settings.host)
    try:
        service.start(append_log=True)
    except ServiceError as exc:
        raise StackError(str(exc)) from None
    (settings.data_dir / "service.pid").write_text(str(service.pid))
    return url


def stop(settings: Settings) -> str:
    """Stop a service started by `start`: its process group drains on SIGTERM, SIGKILL after 30 s."""
    pidfile = settings.data_dir / "service.pid"
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return "not running"
    result = terminate(pid, group=True, grace=30)
    if result != "survived":
        pidfile.unlink(missing_ok=True)
    return {"killed": "killed (it did not stop within 30 s of SIGTERM)",
            "survived": f"STILL RUNNING: process group {pid} survived SIGKILL"}.get(result, result)
