"""The house rules that keep the application and its operations apart (README: Layout)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from service.settings import ROOT

PACKAGES = ("service", "ops", "bench", "loadtests")
OURS = (*PACKAGES, "tests")


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module a file imports (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_application_imports_nothing_of_the_operations_or_the_harness() -> None:
    above = ("ops", "bench", "loadtests", "tests")
    upward = {str(path.relative_to(ROOT)): sorted(n for n in imported(path) if n.split(".")[0] in above)
              for path in modules("service")}
    assert {path: names for path, names in upward.items() if names} == {}


def test_the_operations_import_no_harness() -> None:
    upward = {str(path.relative_to(ROOT)): sorted(name for name in imported(path)
                                                  if name.split(".")[0] in ("bench", "loadtests", "tests"))
              for path in modules("ops")}
    assert {path: names for path, names in upward.items() if names} == {}


def test_no_private_name_is_imported_from_another_module() -> None:
    found = []
    for package in OURS:
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS:
                    found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


def test_a_module_of_ours_is_not_reached_into_for_its_private_names() -> None:
    """`stack._run_as` and the like: a private name used through a module of the project."""
    found = []
    for package in OURS:
        for path in modules(package):
            tree = ast.parse(path.read_text())
            ours = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module and node.module.split(".")[0] in OURS for alias in node.names}
            for node in ast.walk(tree):
                if not isinstance(node, ast.Attribute):
                    continue
                private = node.attr.startswith("_") and not node.attr.startswith("__")
                if private and isinstance(node.value, ast.Name) and node.value.id in ours:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []


def test_the_image_carries_the_application_only() -> None:
    copied = re.findall(r"^COPY (.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    assert copied == ["requirements.txt constraints.txt", "service", "sql"]


# What Sanic keeps to itself (its HttpProtocol and Http), read or written by the front.
# (_task, _time and _send are Sanic's too, but also other classes' own: the imports of Sanic's
# protocol and stream modules catch those.)
SANIC_PRIVATE = re.compile(r"\.(_http|recv_buffer|_data_received|_can_write|_safe_int|response_func|"
                           r"init_for_request|http1_response_header)\b|\bStage\b|sanic\.(http|server)\b")


def test_sanics_private_names_appear_in_one_module() -> None:
    """service/http/sanic_side.py, which declares the versions it was written against."""
    found = {str(path.relative_to(ROOT)) for path in modules("service")
             if SANIC_PRIVATE.search(path.read_text())}
    assert found == {"service/http/sanic_side.py"}


def test_every_response_head_is_written_by_one_function() -> None:
    """service/http/writer.py's head(): no status line nor Sanic's formatter anywhere else in service/."""
    heads = re.compile(r"HTTP/1\.[01] [1-5]\d\d|format_http1_response|STATUS_CODES")
    found = {str(path.relative_to(ROOT)) for path in modules("service") if heads.search(path.read_text())}
    assert found == {"service/http/writer.py"}


def test_no_untyped_worker_context() -> None:
    """app.ctx is service/context.py's WorkerContext: no SimpleNamespace and no `ctx: Any` in service/."""
    loose = re.compile(r"SimpleNamespace|ctx: Any")
    assert [str(p.relative_to(ROOT)) for p in modules("service") if loose.search(p.read_text())] == []
