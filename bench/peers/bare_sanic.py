"""The floor's floor: a bare Sanic app answering GET /ping with the service's body, on uvloop,
one worker, no access log, no middleware, nothing else. make bench measures the service's /ping
against it in the same run, to see what the service's own per-request code costs every route.

    PORT=2091 python -m bench.peers.bare_sanic
"""

from __future__ import annotations

import os

from sanic import HTTPResponse, Request, Sanic

app = Sanic("bare_floor")
app.config.update(ACCESS_LOG=False, USE_UVLOOP=True)


@app.get("/ping")
async def ping(request: Request) -> HTTPResponse:
    return HTTPResponse(b'{"pong":true}', content_type="application/json")


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["PORT"]), workers=1, access_log=False, motd=False,
            single_process=True)
