"""Running an ASGI app under one worker process of uvicorn or granian, with the same settings
for the broker and for the benchmarks' bare baseline (so a ratio compares like with like).

The app comes from a zero-argument factory named by an import string: granian starts its
worker in a fresh process and imports the target there. The broker's factory reads its
config file from ``SUPERFED_CONFIG``."""

from __future__ import annotations

import os

from broker.config import ApiConfig

SERVERS = ("uvicorn", "granian")


def run(target: str, *, host: str, port: int, server: str = "uvicorn", limits: ApiConfig | None = None) -> None:
    """Serve the app made by ``target`` ("module:factory") until SIGINT/SIGTERM, with the
    header deadline, keep-alive timeout and connection cap of ``limits`` (default: the
    defaults of ``[api]``)."""
    limits = limits or ApiConfig()
    if server == "granian":
        try:
            from granian import Granian
            from granian.constants import Interfaces, Loops
        except ImportError:
            raise SystemExit("superfed serve --server granian: granian is not installed "
                             "(pip install 'granian>=2.8,<3'); see bench/README.md") from None

        # granian (benchmarks only) keeps its own header and keep-alive timeouts
        Granian(target, address=host, port=port, interface=Interfaces.ASGI, workers=1, loop=Loops.uvloop,
                factory=True, log_enabled=True, log_level="warning", log_access=False,
                workers_kill_timeout=10).serve()
        return
    if server != "uvicorn":
        raise ValueError(f"server must be one of {', '.join(SERVERS)}")
    import uvicorn

    from broker.http_guard import uvicorn_options

    uvicorn.run(target, factory=True, host=host, port=port, log_level="warning", access_log=False,
                loop="uvloop", timeout_graceful_shutdown=10,
                **uvicorn_options(header_timeout=limits.header_timeout,
                                  keep_alive_timeout=limits.keep_alive_timeout,
                                  max_connections=limits.max_connections))


def app_from_env():  # type: ignore[no-untyped-def]
    """The broker app for the config file named by ``SUPERFED_CONFIG``."""
    from broker.app import create_app
    from broker.config import load

    return create_app(load(os.environ["SUPERFED_CONFIG"]))
