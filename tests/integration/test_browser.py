"""The pages people open, rendered by a real browser (headless Chromium, installed from Debian's
packages where missing): what the scripts draw, not only the HTML the server sends."""

import html
import re
import subprocess
import tempfile

from loadtests.run import UI_LOAD
from ops.system import ensure_tool
from service.api.docs import GROUPS, OPENAPI
from tests.conftest import Server, free_port
from tests.integration.test_locust import start_ui


def rendered(url: str) -> str:
    """The page's DOM after its scripts ran (Chromium waits up to 20 s of virtual time for them)."""
    chromium = ensure_tool("chromium", "chromium")
    with tempfile.TemporaryDirectory() as profile:  # a profile of its own: no state between runs
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--dump-dom"]
        done = subprocess.run([chromium, *flags, url], capture_output=True, text=True, timeout=180,
                              check=False)
    assert done.returncode == 0 and done.stdout, done.stderr[-2000:]
    return done.stdout


def test_swagger_draws_every_operation_in_its_group(server: Server) -> None:
    dom = rendered(f"{server.url}/swagger")
    sections = re.findall(r'data-tag="([^"]+)"', dom)
    assert sections == list(GROUPS), sections  # the groups, in order; no "default"
    drawn = {(m.lower(), html.unescape(p)) for m, p in re.findall(
        r'class="opblock-summary-method">(\w+)</span>.*?data-path="([^"]+)"', dom, flags=re.S)}
    documented = {(method, path) for path, ops in OPENAPI["paths"].items() for method in ops}
    assert drawn == documented, (documented - drawn, drawn - documented)
    assert "Failed to load API definition" not in dom


def test_locust_ui_draws_the_scenario_with_its_load(server: Server) -> None:
    port = free_port()
    proc = start_ui(server.url, port, "MixedUser", "mixed")
    try:
        dom = rendered(f"http://127.0.0.1:{port}/")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    users, rate = UI_LOAD["mixed"]
    # the start form as drawn (the page's own script data left out): the scenario offered, the
    # user count, spawn rate and host filled in
    drawn = re.sub(r"<script.*?</script>", "", dom, flags=re.S)
    inputs = {}
    for tag in re.findall(r"<input[^>]*>", drawn):
        name, value = re.search(r'name="(\w+)"', tag), re.search(r'value="([^"]*)"', tag)
        if name:
            inputs[name[1]] = html.unescape(value[1]) if value else ""
    assert inputs.get("userCount") == str(users), inputs
    assert inputs.get("spawnRate") == f"{rate:g}", inputs
    assert inputs.get("host") == server.url, inputs
    assert re.search(r">\s*MixedUser\s*<", drawn), "the scenario is not drawn"
