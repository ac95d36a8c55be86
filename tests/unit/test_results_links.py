"""What RESULTS.md shows is in the repository: every image and file it links is committed."""

from __future__ import annotations

import re
import subprocess

import pytest

from service.settings import ROOT

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def tracked(path: str) -> bool:
    result = subprocess.run(["git", "ls-files", "--error-unmatch", path], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    return result.returncode == 0


@pytest.mark.parametrize("document", ["RESULTS.md", "README.md"])
def test_local_links_resolve_to_committed_files(document: str) -> None:
    text = (ROOT / document).read_text()
    local = [t for t in LINK.findall(text) if not t.startswith(("http://", "https://", "#", "mailto:"))]
    assert local, f"{document} links no file of the repository (the checks below would pass on nothing)"
    if document == "RESULTS.md":
        assert any(t.endswith(".png") for t in local), "RESULTS.md shows no plots"
    for target in local:
        path = target.split("#", 1)[0]
        assert (ROOT / path).exists(), f"{document} links {target}, which does not exist"
        assert tracked(path), f"{document} links {target}, which is not committed (git-ignored?)"
