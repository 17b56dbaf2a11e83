"""The baseline every HTTP benchmark compares against: a bare Litestar app with no auth, no
Redis and no middleware, served by ``broker.serving.run`` exactly as the broker is.

- ``GET /json``: a small JSON object (hello world).
- ``GET /status``: the JSON body in the file named by ``BENCH_BARE_BODY`` (the broker's own
  status answer, captured by bench/status.py), decoded once and serialized per request just
  as the broker's handler serializes its answer: same bytes on the wire, none of the work.
- ``POST /jobs``: decodes and validates the body as the broker's ``JobCreate``, answers 202.

Run: ``.venv/bin/python bench/bare.py --port 8100 [--server uvicorn|granian]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec
from litestar import Litestar, Response, get, post

from broker.schemas import JobCreate


def create() -> Litestar:
    body_file = os.environ.get("BENCH_BARE_BODY")
    status_body: Any = msgspec.json.decode(Path(body_file).read_bytes()) if body_file else {"sites": []}

    @get("/json", sync_to_thread=False)
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    @get("/status")
    async def status() -> Any:
        return status_body

    @post("/jobs", status_code=202)
    async def jobs(data: JobCreate) -> Response[bytes]:
        return Response(b'{"accepted":true}', status_code=202, media_type="application/json")

    return Litestar(route_handlers=[hello, status, jobs], debug=False)


def main() -> int:
    from broker import serving

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--server", choices=serving.SERVERS, default="uvicorn")
    args = p.parse_args()
    serving.run("bench.bare:create", host="127.0.0.1", port=args.port, server=args.server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
