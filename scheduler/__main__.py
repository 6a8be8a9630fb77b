"""CLI: settings -> logging -> run the app until SIGTERM/SIGINT (then drain and exit 0)."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Mapping, Sequence

import uvloop
from aiohttp import web

from scheduler.app import check_startup, create_app
from scheduler.errors import ConfigError
from scheduler.heap import return_large_blocks
from scheduler.logs import configure_logging
from scheduler.settings import describe_listening, load_settings

EXIT_CONFIG_ERROR = 2
log = logging.getLogger("scheduler")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings(args, os.environ if environ is None else environ)
    except ConfigError as exc:
        print(f"job-scheduler: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    # Before the first log line: an exposed local backend without a token, or a state dir that
    # cannot be ours, is one line and exit 2.
    try:
        check_startup(settings)
    except ConfigError as exc:
        print(f"job-scheduler: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    configure_logging(settings.log_level)
    definition = settings.definition
    log.info(
        "backend: %s (%s), %s",
        settings.backend,
        settings.backend_reason,
        describe_listening(settings),
    )
    log.info(
        "serving job %s of app %s in environment %s, %s, on port %d",
        definition.name,
        definition.app,
        definition.environment,
        f"state in {settings.state_dir}"
        if settings.backend == "local"
        else f"namespace {settings.namespace}",
        settings.port,
    )
    try:
        app = create_app(settings)
        # What is loaded by now (modules, the client's and our models' schemas: some 70,000
        # objects) lives as long as the process: full garbage collections need not walk it each
        # time, which took some 30 ms, a pause any request could meet.
        gc.freeze()
        return_large_blocks()
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            shutdown_timeout=settings.shutdown_timeout_seconds,
            access_log=None,
            print=None,
            # uvloop: the same asyncio API, with socket I/O and scheduling in C.
            loop=uvloop.new_event_loop(),
        )
    except ConfigError as exc:
        log.error("%s", exc)
        print(f"job-scheduler: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
