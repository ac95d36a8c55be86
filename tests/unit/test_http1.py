"""The benchmarks' raw HTTP/1.1 framing (bench/http1.py): whole responses only, in order."""

from bench.http1 import request, split_response

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{\"pong\":1}\n"
BAD = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}"


def test_a_partial_response_waits_for_more() -> None:
    for cut in (0, 10, len(OK) - 1):
        assert split_response(OK[:cut]) is None


def test_pipelined_responses_come_out_one_at_a_time() -> None:
    first = split_response(OK + BAD + b"HTTP/1.1")
    assert first is not None and first[:2] == (200, b'{"pong":1}\n')
    second = split_response(first[2])
    assert second == (503, b"{}", b"HTTP/1.1")


def test_a_response_without_a_body() -> None:
    assert split_response(b"HTTP/1.1 204 No Content\r\n\r\nrest") == (204, b"", b"rest")


def test_a_request_is_one_buffer_with_its_length() -> None:
    sent = request("POST", "/api/v1/tweet", "tok", '{"msg":"é"}'.encode())
    assert sent.startswith(b"POST /api/v1/tweet HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer tok\r\n")
    assert b"Content-Length: 12\r\n\r\n" in sent and sent.endswith('{"msg":"é"}'.encode())
