"""Job names and the Kubernetes bodies built for a job."""

from __future__ import annotations

import base64
import random
import re
from datetime import UTC, datetime

from scheduler.backends.base import ExitCodeRule, Identity
from scheduler.backends.kubernetes.manifests import (
    build_anchor,
    build_job,
    build_payload_secret,
    build_service,
    configmap_owner,
    has_anchor,
    label_selector,
)
from scheduler.names import new_job_name
from tests.factories import job_request

IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")


def test_job_names_look_like_radix_names() -> None:
    name = new_job_name("compute", datetime(2021, 4, 7, 10, 55, 56, tzinfo=UTC), random.Random(1))
    assert re.fullmatch(r"compute-20210407105556-[a-z]{8}", name)


def test_two_names_in_the_same_second_differ() -> None:
    now = datetime(2021, 4, 7, tzinfo=UTC)
    assert len({new_job_name("compute", now) for _ in range(100)}) == 100


def test_the_job_runs_one_container_the_way_radix_does() -> None:
    job = build_job(IDENTITY, job_request())
    spec = job["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["labels"] == {
        "radix-app": "myapp",
        "radix-component": "compute",
        "radix-job-type": "job-scheduler",
        "radix-job-name": "compute-20210407105556-rkwaibwe",
    }
    assert job["metadata"]["annotations"] == {"radix.equinor.com/job-id": "job1"}
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 3600)
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["image"] == "busybox:1.36"
    assert container["command"] == ["sh", "-c"] and container["args"] == ["sleep 1; exit 0"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "A": "1",
        "RADIX_JOB_NAME": "compute-20210407105556-rkwaibwe",
        "RADIX_APP": "myapp",
        "RADIX_ENVIRONMENT": "dev",
        "RADIX_COMPONENT": "compute",
    }
    assert container["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert container["resources"] == {"requests": {"cpu": "50m"}, "limits": {"memory": "64Mi"}}


def test_the_payload_is_mounted_read_only_as_the_file_payload() -> None:
    job = build_job(IDENTITY, job_request())
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "job-payload", "mountPath": "/compute/args", "readOnly": True}
    ]
    volume = pod["volumes"][0]["secret"]
    assert volume["secretName"] == "compute-20210407105556-rkwaibwe-payload"
    assert volume["items"] == [{"key": "payload", "path": "payload"}]


ANCHOR = configmap_owner("compute-20210407105556-rkwaibwe-anchor", "anchor-uid")


def test_a_job_s_anchor_is_a_configmap_owned_by_its_job() -> None:
    anchor = build_anchor(IDENTITY, job_request(), job_uid="uid-1")
    metadata = anchor["metadata"]
    assert (anchor["kind"], metadata["name"]) == (
        "ConfigMap",
        "compute-20210407105556-rkwaibwe-anchor",
    )
    assert metadata["labels"]["radix.equinor.com/anchor"] == "true"
    assert metadata["labels"]["radix-job-name"] == "compute-20210407105556-rkwaibwe"
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Job",
        "compute-20210407105556-rkwaibwe",
        "uid-1",
    )
    assert "data" not in anchor  # it holds nothing itself


def test_only_a_single_job_with_a_payload_or_ports_has_an_anchor() -> None:
    assert has_anchor(job_request())
    assert has_anchor(job_request(ports=()))
    assert has_anchor(job_request(payload=None))
    assert not has_anchor(job_request(payload=None, ports=()))
    assert not has_anchor(job_request(batch_name="batch-compute-1"))  # its batch record owns them


def test_the_payload_secret_is_owned_by_the_anchor_and_holds_the_bytes() -> None:
    secret = build_payload_secret(IDENTITY, job_request(), ANCHOR)
    assert secret is not None
    assert base64.b64decode(secret["data"]["payload"]) == b'{"x": 10}'
    assert secret["immutable"] is True
    [owner] = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ConfigMap",
        "compute-20210407105556-rkwaibwe-anchor",
        "anchor-uid",
    )


def test_an_empty_payload_is_an_empty_file_and_no_payload_path_mounts_nothing() -> None:
    empty = build_payload_secret(IDENTITY, job_request(payload=b""), ANCHOR)
    assert empty is not None and empty["data"]["payload"] == ""
    assert (
        build_payload_secret(IDENTITY, job_request(payload=None, payload_path=None), ANCHOR) is None
    )
    pod = build_job(IDENTITY, job_request(payload=None, payload_path=None))["spec"]["template"][
        "spec"
    ]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


def test_a_service_named_like_the_job_exists_only_when_the_job_has_ports() -> None:
    service = build_service(IDENTITY, job_request(), ANCHOR)
    assert service is not None
    assert service["metadata"]["name"] == "compute-20210407105556-rkwaibwe"
    assert service["metadata"]["ownerReferences"] == [ANCHOR]
    assert service["spec"]["selector"] == {"job-name": "compute-20210407105556-rkwaibwe"}
    assert service["spec"]["ports"][0]["port"] == 3000
    assert build_service(IDENTITY, job_request(ports=()), ANCHOR) is None


def test_failure_rules_become_a_pod_failure_policy() -> None:
    rules = (ExitCodeRule("FailJob", "In", (42,)), ExitCodeRule("Ignore", "In", (143,)))
    policy = build_job(IDENTITY, job_request(failure_rules=rules))["spec"]["podFailurePolicy"]
    assert policy["rules"][0] == {
        "action": "FailJob",
        "onExitCodes": {"operator": "In", "values": [42]},
    }


def test_the_selector_names_only_this_schedulers_jobs() -> None:
    assert label_selector(IDENTITY) == (
        "radix-app=myapp,radix-component=compute,radix-job-type=job-scheduler"
    )
