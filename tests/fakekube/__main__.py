"""Run the fake API server standalone:
`python -m tests.fakekube --port 0 --kubeconfig /tmp/kc.yaml [--time-scale 1.0]`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import pathlib
import signal
import sys
from collections.abc import Sequence

from .fake import FakeKube


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakekube", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", type=pathlib.Path, help="write a kubeconfig here")
    parser.add_argument("--namespace", default="default", help="the kubeconfig's namespace")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply simulated durations (container sleeps, back-offs)",
    )
    parser.add_argument("--pending-seconds", type=float, default=0.05)
    parser.add_argument("--history-size", type=int, default=1000)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    fake = FakeKube(
        time_scale=args.time_scale,
        pending_seconds=args.pending_seconds,
        history_size=args.history_size,
    )
    await fake.start(args.host, args.port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        if args.kubeconfig:
            fake.write_kubeconfig(args.kubeconfig, args.namespace)
        print(fake.url, flush=True)
        await stopping.wait()
    finally:
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    # A fake that held a benchmark's objects (a few GB) otherwise spends seconds in the garbage
    # collector on the way out, past its parent's stop timeout; what is left is freed by the OS.
    gc.disable()
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
