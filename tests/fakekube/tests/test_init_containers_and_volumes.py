"""The fake node's init containers (run first, in order, `Init` while they run, a failing one
fails a `Never` pod), its volumes as containers see them (Secrets, projected Secrets, emptyDirs
of the pod's own, gone with the pod), `python` commands run for real with their mounts on disk,
and the scripts that prove what a container read (`sha256sum`, `wc -c`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.aio.client.exceptions import ApiException

from tests.fakekube.processes import rewritten
from tests.fakekube.script import Sha256, Size, parse_script
from tests.fakekube.testing import (
    Kube,
    condition,
    has_condition,
    job_manifest,
    phase,
    running_kube,
    secret_manifest,
)

NS = "default"
JSON = dict[str, Any]
# A python init container that copies a file from one mount to another, as the scheduler's
# payload assembler does, and says so in its log and termination log.
COPY = (
    "import pathlib, sys; src, dst, log = map(pathlib.Path, sys.argv[1:4]); "
    "dst.write_bytes(src.read_bytes()); print('copied', len(dst.read_bytes())); "
    "log.write_text('copied')"
)
FAIL = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('it went wrong'); sys.exit(3)"


@pytest.fixture
async def kube(caplog: pytest.LogCaptureFixture) -> AsyncIterator[Kube]:
    async with running_kube(time_scale=0.05) as kube:
        yield kube
    failures = [
        r
        for r in caplog.records
        if r.name.startswith("tests.fakekube") and r.levelno >= logging.ERROR
    ]
    assert failures == []


def finished(job: JSON | None) -> bool:
    return has_condition(job, "Complete") or has_condition(job, "Failed")


def pods_of(kube: Kube, job: str) -> list[JSON]:
    return kube.fake.list("Pod", NS, f"job-name={job}")


async def run_to_end(kube: Kube, manifest: JSON) -> JSON:
    await kube.batch.create_namespaced_job(NS, manifest)
    job = await kube.fake.wait_for("Job", NS, manifest["metadata"]["name"], finished, 20)
    assert job is not None
    return job


def copying_pod() -> JSON:
    """A pod whose init container copies Secret `parts`' key `a` (projected as `0`) into an
    emptyDir that the main container mounts at /data (`main_mounting_data`)."""
    args = ["/in/0", "/out/payload", "/dev/termination-log"]
    return {
        "initContainers": [
            {
                "name": "copy",
                "image": "job-scheduler:test",
                "command": ["python", "-c", COPY, *args],
                "volumeMounts": [
                    {"name": "parts", "mountPath": "/in", "readOnly": True},
                    {"name": "work", "mountPath": "/out"},
                ],
            }
        ],
        "volumes": [
            {"name": "work", "emptyDir": {}},
            {
                "name": "parts",
                "projected": {
                    "sources": [{"secret": {"name": "parts", "items": [{"key": "a", "path": "0"}]}}]
                },
            },
        ],
    }


def main_mounting_data() -> JSON:
    return {"volumeMounts": [{"name": "work", "mountPath": "/data", "readOnly": True}]}


# -- init containers ---------------------------------------------------------------------------


async def test_an_init_container_runs_for_real_before_the_container_and_fills_an_empty_dir(
    kube: Kube,
) -> None:
    content = "h\u00e9llo \U0001f680"
    await kube.core.create_namespaced_secret(NS, secret_manifest("parts", {"a": content}))
    script = (
        "sha256sum /data/payload; wc -c < /data/payload; wc -c /data/payload; cat /data/payload"
    )
    manifest = job_manifest("init", script, container=main_mounting_data(), pod_spec=copying_pod())

    job = await run_to_end(kube, manifest)

    assert has_condition(job, "Complete")
    [pod] = pods_of(kube, "init")
    name = pod["metadata"]["name"]
    encoded = content.encode()
    log = await kube.core.read_namespaced_pod_log(name, NS)
    assert log.splitlines() == [
        f"{hashlib.sha256(encoded).hexdigest()}  /data/payload",
        str(len(encoded)),
        f"{len(encoded)} /data/payload",
        content,
    ]
    init_log = await kube.core.read_namespaced_pod_log(name, NS, container="copy")
    assert init_log == f"copied {len(encoded)}\n"
    [init] = pod["status"]["initContainerStatuses"]
    terminated = init["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"], terminated["message"]) == (
        "Completed",
        0,
        "copied",
    )
    assert init["ready"] is True
    assert has_condition(pod, "Initialized")


async def test_a_pod_initializing_waits_with_every_container_in_pod_initializing(
    kube: Kube,
) -> None:
    # The parts are missing: the pod stays in its first moments (FailedMount) until they come.
    manifest = job_manifest("early", container=main_mounting_data(), pod_spec=copying_pod())
    await kube.batch.create_namespaced_job(NS, manifest)
    await kube.fake.wait_for(
        "Event",
        NS,
        "",
        lambda _: any(e["reason"] == "FailedMount" for e in kube.fake.list("Event", NS)),
    )
    [pod] = pods_of(kube, "early")

    assert phase(pod) == "Pending"
    for field in ("initContainerStatuses", "containerStatuses"):
        [status] = pod["status"][field]
        assert status["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = condition(pod, "Initialized")
    assert initialized is not None
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")
    with pytest.raises(ApiException) as exc:
        await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert exc.value.status == 400
    assert "is waiting to start: PodInitializing" in exc.value.body

    await kube.core.create_namespaced_secret(NS, secret_manifest("parts", {"a": "x"}))
    assert has_condition(await kube.fake.wait_for("Job", NS, "early", finished), "Complete")


async def test_a_failing_init_container_fails_a_never_pod_and_its_container_never_starts(
    kube: Kube,
) -> None:
    pod_spec = {
        "initContainers": [
            {
                "name": "broken",
                "image": "job-scheduler:test",
                "command": ["python", "-c", FAIL, "/dev/termination-log"],
            }
        ]
    }
    job = await run_to_end(
        kube, job_manifest("broken", "echo never", pod_spec=pod_spec, backoffLimit=0)
    )

    assert has_condition(job, "Failed")
    [pod] = pods_of(kube, "broken")
    assert phase(pod) == "Failed"
    [init] = pod["status"]["initContainerStatuses"]
    terminated = init["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"], terminated["message"]) == (
        "Error",
        3,
        "it went wrong",
    )
    [main] = pod["status"]["containerStatuses"]
    assert main["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert not has_condition(pod, "Initialized")


async def test_a_log_of_a_container_the_pod_does_not_have_is_400(kube: Kube) -> None:
    await run_to_end(kube, job_manifest("one"))
    [pod] = pods_of(kube, "one")
    with pytest.raises(ApiException) as exc:
        await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS, container="other")
    assert exc.value.status == 400
    assert f"container other is not valid for pod {pod['metadata']['name']}" in exc.value.body


# -- volumes -----------------------------------------------------------------------------------


async def test_a_container_reads_files_of_projected_secrets(kube: Kube) -> None:
    for name, value in (("p0", "first\n"), ("p1", "second\n")):
        await kube.core.create_namespaced_secret(NS, secret_manifest(name, {"payload": value}))
    sources = [
        {"secret": {"name": name, "items": [{"key": "payload", "path": str(i)}]}}
        for i, name in enumerate(("p0", "p1"))
    ]
    pod_spec = {"volumes": [{"name": "parts", "projected": {"sources": sources}}]}
    container = {"volumeMounts": [{"name": "parts", "mountPath": "/parts", "readOnly": True}]}
    manifest = job_manifest(
        "projected",
        "cat /parts/0; cat /parts/1; cat /parts/2",
        container=container,
        pod_spec=pod_spec,
    )

    await run_to_end(kube, manifest)

    [pod] = pods_of(kube, "projected")
    log = await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log == "first\nsecond\ncat: can't open '/parts/2': No such file or directory\n"
    assert pod["spec"]["volumes"][0]["projected"]["defaultMode"] == 420


async def test_a_pod_s_empty_dir_is_gone_with_the_pod(kube: Kube) -> None:
    await kube.core.create_namespaced_secret(NS, secret_manifest("parts", {"a": "kept"}))
    manifest = job_manifest(
        "gone", "cat /data/payload", container=main_mounting_data(), pod_spec=copying_pod()
    )
    await run_to_end(kube, manifest)
    [pod] = pods_of(kube, "gone")
    node = Path(tempfile.gettempdir())
    node_dirs = list(node.glob(f"fakekube-node-*/{pod['metadata']['uid']}"))  # noqa: ASYNC240
    assert len(node_dirs) == 1 and any(node_dirs[0].rglob("payload"))

    await kube.batch.delete_namespaced_job("gone", NS, propagation_policy="Background")
    await kube.fake.wait_for("Pod", NS, pod["metadata"]["name"], lambda p: p is None)

    assert not node_dirs[0].exists()


async def test_a_python_container_s_file_arguments_under_its_mounts_are_rewritten() -> None:
    mounts = {"/in": "/host/in", "/in/deeper": "/host/deeper", "/dev/termination-log": "/host/t"}
    argv = ["python", "-m", "x", "--parts", "/in", "/in/deeper/0", "/input", "/dev/termination-log"]
    assert rewritten(argv, mounts) == [
        "python",
        "-m",
        "x",
        "--parts",
        "/host/in",
        "/host/deeper/0",
        "/input",
        "/host/t",
    ]


# -- scripts that prove what a container read ---------------------------------------------------


def test_sha256sum_and_wc_c_are_understood() -> None:
    script = parse_script("sha256sum /p/payload; wc -c < /p/payload; wc -c /p/payload")
    assert script.steps == (
        Sha256("/p/payload"),
        Size("/p/payload", False),
        Size("/p/payload", True),
    )


async def test_sha256sum_of_a_secret_file_is_the_checksum_of_its_bytes(kube: Kube) -> None:
    content = bytes(range(256))
    secret = secret_manifest("bin")
    secret["data"] = {"payload": base64.b64encode(content).decode()}
    await kube.core.create_namespaced_secret(NS, secret)
    pod_spec = {"volumes": [{"name": "v", "secret": {"secretName": "bin"}}]}
    container = {"volumeMounts": [{"name": "v", "mountPath": "/p", "readOnly": True}]}
    script = "sha256sum /p/payload; wc -c < /p/payload; sha256sum /p/other"
    await run_to_end(kube, job_manifest("sum", script, container=container, pod_spec=pod_spec))

    [pod] = pods_of(kube, "sum")
    log = await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert log.splitlines() == [
        f"{hashlib.sha256(content).hexdigest()}  /p/payload",
        "256",
        "sha256sum: can't open '/p/other': No such file or directory",
    ]
