"""schemathesis hooks for make fuzz (SCHEMATHESIS_HOOKS=tests.fuzz_hooks): how to generate the
schema's one custom format, "tag" (see service/api/docs.py)."""

import re
import secrets

import schemathesis
from hypothesis import strategies as st

USERNAME = re.compile(r"[A-Za-z0-9_]{3,32}")

# Valid tags as clients write them: ASCII words, other scripts, full-width forms, with '#' or not.
_WORD = st.from_regex(r"\A[A-Za-z0-9_]{1,64}\Z")
_FULL_WIDTH_PYTHON = "\uff30\uff39\uff34\uff28\uff2f\uff2e"
_OTHER = st.sampled_from(["été", "日本", "Straße", _FULL_WIDTH_PYTHON, "данные", "٣٤", "tag_1"])
schemathesis.openapi.format("tag", st.tuples(st.sampled_from(["", "#"]), _WORD | _OTHER).map("".join))


@schemathesis.hook
def map_body(ctx: schemathesis.HookContext, body: object) -> object:
    """Registrations get a fresh username (same shape): generated names repeat, and a taken name
    is a 422 by contract, so without this most registrations would test only that path."""
    if ctx.operation is not None and ctx.operation.path == "/api/v1/register" and isinstance(body, dict):
        name = body.get("username")
        if isinstance(name, str) and USERNAME.fullmatch(name):
            body["username"] = name[:24] + secrets.token_hex(4)
    return body
