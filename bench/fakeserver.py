"""The benchmark's fake API server: `tests.fakekube` with a control port besides it.

On the control port the bench reads the fake's audit log (the API calls each namespace got) and
copies a job with everything it owns straight into the store (a history of ended jobs in seconds).
Neither goes through the API, so neither is in the audit log.

  python bench/fakeserver.py --port 0 --kubeconfig PATH --history-size N --control-port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import pathlib
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiohttp import web

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script: make `tests.fakekube` importable

from tests.fakekube import FakeKube  # noqa: E402

FAKE = web.AppKey("fake", FakeKube)
# What a job owns, directly or through its anchor: these kinds are copied with it.
OWNED_KINDS = ("Pod", "ConfigMap", "Secret", "Service")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/fakeserver.py", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="the API server's; 0 picks a free one")
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--history-size", type=int, default=1000)
    parser.add_argument("--control-port", type=int, required=True)
    return parser.parse_args(argv)


async def audit(request: web.Request) -> web.Response:
    """`?namespace=NS&since=K`: the calls into NS among the audit log's entries from the K-th on,
    counted by verb, resource, subresource and status code; `next` is the K of a later call."""
    fake = request.app[FAKE]
    namespace = request.query["namespace"]
    entries = fake.audit[int(request.query.get("since", "0")) :]
    counted = Counter(
        (entry.verb, entry.resource, entry.subresource or "", entry.status_code)
        for entry in entries
        if entry.namespace == namespace
    )
    calls = [
        {"verb": verb, "resource": resource, "subresource": sub, "code": code, "count": count}
        for (verb, resource, sub, code), count in sorted(counted.items())
    ]
    return web.json_response({"next": len(fake.audit), "calls": calls})


async def objects(request: web.Request) -> web.Response:
    """`?kind=Job&namespace=NS[&name=NAME | &labelSelector=...]`: the objects, as stored."""
    fake = request.app[FAKE]
    query = request.query
    if "name" in query:
        found = fake.get(query["kind"], query["namespace"], query["name"])
        items = [] if found is None else [found]
    else:
        items = fake.list(query["kind"], query["namespace"], query.get("labelSelector"))
    return web.json_response({"items": items})


def _owned_by(fake: FakeKube, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
    """The job and what it owns, directly or through what it owns (its anchor's Secret and
    Service), owners first."""
    found, owners = [job], {job["metadata"]["uid"]}
    candidates = [obj for kind in OWNED_KINDS for obj in fake.list(kind, namespace)]
    while True:
        more = [
            obj
            for obj in candidates
            if obj["metadata"]["uid"] not in owners
            and any(
                ref.get("uid") in owners for ref in obj["metadata"].get("ownerReferences") or ()
            )
        ]
        if not more:
            return found
        found += more
        owners |= {obj["metadata"]["uid"] for obj in more}


async def clone(request: web.Request) -> web.Response:
    """`{"namespace": NS, "job": NAME, "names": [...], "part": "job" | "owned"}`: store a copy
    of the Job NAME (part `job`), or of what it owns (part `owned`), under each new name, as the
    API server would hold a job that ran the same way: its name replaced wherever it occurs (its
    pods', anchor's, record's and Secret's names, labels, annotation keys, record keys), each
    object's uid replaced everywhere it occurs (owner references, the Job's selector) by one
    made of the new name and the old uid, so that both parts agree."""
    fake = request.app[FAKE]
    body = await request.json()
    namespace, template_name, names = body["namespace"], body["job"], body["names"]
    job = fake.get("Job", namespace, template_name)
    if job is None:
        raise web.HTTPNotFound(text=f"no Job {namespace}/{template_name}")
    template = _owned_by(fake, namespace, job)
    uids = [obj["metadata"]["uid"] for obj in template]
    part = template[:1] if body["part"] == "job" else template[1:]
    for obj in part:
        obj["metadata"].pop("resourceVersion", None)
    text = json.dumps(part)
    put = 0
    for name in names:
        if body["part"] == "job" and fake.get("Job", namespace, name) is not None:
            raise web.HTTPConflict(text=f"Job {namespace}/{name} exists")
        copy = text.replace(template_name, name)
        for uid in uids:
            copy = copy.replace(uid, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{uid}")))
        for obj in json.loads(copy):
            fake.put(obj)
            put += 1
        await asyncio.sleep(0)  # let the watches send what is stored
    return web.json_response({"objects_per_job": len(template), "put": put})


def control_app(fake: FakeKube) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = fake
    app.router.add_get("/audit", audit)
    app.router.add_get("/objects", objects)
    app.router.add_post("/clone", clone)
    return app


async def serve(args: argparse.Namespace) -> None:
    fake = FakeKube(history_size=args.history_size)
    await fake.start(args.host, args.port)
    control = web.AppRunner(control_app(fake), access_log=None)
    await control.setup()
    await web.TCPSite(control, args.host, args.control_port).start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        # Written last: the bench waits for it, and then both ports answer.
        fake.write_kubeconfig(args.kubeconfig)
        print(fake.url, flush=True)
        await stopping.wait()
    finally:
        await control.cleanup()
        await fake.stop()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    # As `python -m tests.fakekube` does: a fake that held a benchmark's objects otherwise spends
    # seconds in the garbage collector on the way out, past its parent's stop timeout.
    gc.disable()
    gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
