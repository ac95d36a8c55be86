"""The OpenAPI document states the input rules service/validate.py enforces, so generated clients
and schemathesis (make fuzz) agree with the service."""

import re
from typing import Any

import jsonschema_rs
import pytest

from service import validate
from service.api.docs import EXAMPLES, NO_NUL, NOT_BLANK, OPENAPI, SCHEMAS
from service.errors import BadRequest

SAMPLES = ["x", " x ", "   ", "\t\n", "\x00", "a\x00b", "\x1c", "\x1cx", "\ufeff", "\u3000", "\u00a0a",
           "\u2028", "日本", "\x85", "\u200b", "\x1f\x1f"]


@pytest.mark.parametrize("text", SAMPLES)
def test_msg_pattern_matches_the_rule(text: str) -> None:
    try:
        validate.new_tweet({"msg": text})
        accepted = True
    except BadRequest:
        accepted = False
    assert bool(re.fullmatch(NOT_BLANK, text)) == accepted


@pytest.mark.parametrize("text", SAMPLES)
def test_password_pattern_matches_the_rule(text: str) -> None:
    try:
        validate.credentials({"username": "u", "password": text})
        accepted = True
    except BadRequest:
        accepted = False
    assert bool(re.fullmatch(NO_NUL, text)) == accepted


def test_page_bounds_are_the_validators() -> None:
    params = {p["name"]: p["schema"] for p in OPENAPI["paths"]["/api/v1/search-tweets"]["get"]["parameters"]}
    assert params["page"]["maximum"] == validate.MAX_PAGE
    assert params["page_size"]["maximum"] == validate.MAX_PAGE_SIZE


def _resolved(schema: Any) -> Any:
    """A schema with its #/components/schemas references written out (for jsonschema)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _resolved(SCHEMAS[schema["$ref"].rsplit("/", 1)[1]])
        return {k: _resolved(v) for k, v in schema.items() if k != "nullable"}
    if isinstance(schema, list):
        return [_resolved(v) for v in schema]
    return schema


def test_swagger_groups_every_operation() -> None:
    names = [t["name"] for t in OPENAPI["tags"]]
    assert names == ["accounts", "tweets", "operations"]
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            assert len(operation.get("tags", [])) == 1 and operation["tags"][0] in names, (method, path)


@pytest.mark.parametrize(("path", "method"), list(EXAMPLES))
def test_each_example_fits_its_schema(path: str, method: str) -> None:
    operation = OPENAPI["paths"][path][method]
    request, status, response = EXAMPLES[(path, method)]
    if request is not None:
        body = operation["requestBody"]["content"]["application/json"]
        assert body["example"] == request
        jsonschema_rs.validate(_resolved(body["schema"]), request)
    answer = operation["responses"][status]["content"]["application/json"]
    assert answer["example"] == response
    jsonschema_rs.validate(_resolved(answer["schema"]), response)
