"""The OpenAPI document states the input rules service/validate.py enforces, so generated clients
and schemathesis (make fuzz) agree with the service."""

import re

import pytest

from service import validate
from service.api.docs import NO_NUL, NOT_BLANK, OPENAPI
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
