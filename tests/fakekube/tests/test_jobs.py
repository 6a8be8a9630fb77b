"""The fake's Job controller and kubelet: pods through their phases and Job status as the
real controllers write them. Durations are simulated seconds at time_scale 0.05."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes.aio.client.exceptions import ApiException
from kubernetes.aio.watch import Watch

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


async def run_to_end(kube: Kube, manifest: JSON, timeout: float = 10) -> JSON:
    await kube.batch.create_namespaced_job(NS, manifest)
    job = await kube.fake.wait_for("Job", NS, manifest["metadata"]["name"], finished, timeout)
    assert job is not None
    return job


def pods_of(kube: Kube, job: str) -> list[JSON]:
    return kube.fake.list("Pod", NS, f"job-name={job}")


async def test_a_succeeding_job_reports_running_then_complete(kube: Kube) -> None:
    statuses: list[Any] = []
    # Watching from a version replays every change since, however late the watch starts.
    since = (await kube.batch.list_namespaced_job(NS)).metadata.resource_version
    await kube.batch.create_namespaced_job(NS, job_manifest("ok", "sleep 2; exit 0"))
    async with Watch() as watch:
        async for event in watch.stream(
            kube.batch.list_namespaced_job, NS, resource_version=since, timeout_seconds=10
        ):
            statuses.append(event["object"].status)
            if any(c.type == "Complete" for c in event["object"].status.conditions or []):
                watch.stop()

    assert any(s.active == 1 and s.ready == 1 for s in statuses)
    final = statuses[-1]
    assert (final.active, final.succeeded, final.failed, final.ready) == (None, 1, None, 0)
    assert final.start_time is not None
    assert final.completion_time >= final.start_time
    assert [(c.type, c.status, c.reason, c.message) for c in final.conditions] == [
        (
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ),
        ("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]
    assert all(c.last_transition_time and c.last_probe_time for c in final.conditions)


async def test_a_job_pod_is_named_labelled_and_owned_like_the_real_controllers(
    kube: Kube,
) -> None:
    job = await run_to_end(kube, job_manifest("ok", labels={"team": "a"}))

    [pod] = pods_of(kube, "ok")
    metadata = pod["metadata"]
    uid = job["metadata"]["uid"]
    assert metadata["name"].startswith("ok-") and len(metadata["name"]) == len("ok-") + 5
    assert metadata["labels"] == {
        "team": "a",
        "job-name": "ok",
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "ok",
        "batch.kubernetes.io/controller-uid": uid,
    }
    assert metadata["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "ok",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert metadata.get("finalizers", []) == []  # released once counted
    assert pod["spec"]["nodeName"] == "fake-node"


async def test_a_pod_goes_pending_running_succeeded_with_kubelet_statuses(kube: Kube) -> None:
    seen: dict[str, JSON] = {}  # the last status seen in each phase
    phases: list[str] = []
    # Watching from a version replays every change since, however late the watch starts.
    since = (await kube.core.list_namespaced_pod(NS)).metadata.resource_version
    await kube.batch.create_namespaced_job(NS, job_manifest("ok", "sleep 1; exit 0"))
    async with Watch() as watch:
        async for event in watch.stream(
            kube.core.list_namespaced_pod, NS, resource_version=since, timeout_seconds=10
        ):
            status = event["raw_object"]["status"]
            seen[status["phase"]] = status
            if not phases or phases[-1] != status["phase"]:
                phases.append(status["phase"])
            if status["phase"] == "Succeeded":
                watch.stop()

    assert phases == ["Pending", "Running", "Succeeded"]
    pending = seen["Pending"]
    assert pending["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert condition({"status": pending}, "PodScheduled")["status"] == "True"
    running = seen["Running"]
    container = running["containerStatuses"][0]
    assert container["state"]["running"]["startedAt"]
    assert (container["ready"], container["started"]) == (True, True)
    assert has_condition({"status": running}, "Ready")
    assert running["podIP"].startswith("10.244.")
    assert running["startTime"]
    terminated = seen["Succeeded"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["startedAt"] <= terminated["finishedAt"]


async def test_a_failing_job_retries_until_the_backoff_limit(kube: Kube) -> None:
    job = await run_to_end(kube, job_manifest("bad", "sleep 1; exit 3", backoffLimit=1))

    status = job["status"]
    assert status["failed"] == 2
    assert "active" not in status
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert condition(job, "Failed")["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in status
    pods = pods_of(kube, "bad")
    assert [phase(p) for p in pods] == ["Failed", "Failed"]
    reasons = {p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] for p in pods}
    assert reasons == {"Error"}


async def test_exit_137_with_a_memory_limit_is_oom_killed(kube: Kube) -> None:
    limits = {"resources": {"limits": {"memory": "64Mi"}}}
    await run_to_end(kube, job_manifest("oom", "exit 137", backoffLimit=0, container=limits))

    [pod] = pods_of(kube, "oom")
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (state["exitCode"], state["reason"]) == (137, "OOMKilled")


async def test_an_active_deadline_fails_the_job_and_stops_its_pod(kube: Kube) -> None:
    job = await run_to_end(kube, job_manifest("slow", "sleep 600; exit 0", activeDeadlineSeconds=4))

    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"
    assert condition(job, "Failed")["message"] == "Job was active longer than specified deadline"
    await kube.fake.settle()
    assert [p for p in pods_of(kube, "slow") if phase(p) == "Running"] == []


async def test_a_fail_job_rule_fails_at_the_first_matching_exit_code(kube: Kube) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    job = await run_to_end(kube, job_manifest("fatal", "exit 42", podFailurePolicy=policy))

    failed = condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed["message"]
    assert job["status"]["failed"] == 1


async def test_an_ignore_rule_replaces_the_pod_without_counting_a_failure(kube: Kube) -> None:
    policy = {"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}}]}
    await kube.batch.create_namespaced_job(
        NS, job_manifest("flaky", "exit 7", backoffLimit=0, podFailurePolicy=policy)
    )

    await kube.fake.wait_for(
        "Job",
        NS,
        "flaky",
        lambda _: len([p for p in pods_of(kube, "flaky") if phase(p) == "Failed"]) >= 2,
    )
    await kube.fake.settle()
    job = kube.fake.get("Job", NS, "flaky")

    assert "failed" not in job["status"]
    assert not finished(job)
    await kube.batch.delete_namespaced_job("flaky", NS, propagation_policy="Background")


async def test_a_suspended_job_runs_nothing_until_resumed(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("later", suspend=True))
    suspended = await kube.fake.wait_for(
        "Job", NS, "later", lambda j: has_condition(j, "Suspended")
    )

    await kube.batch.patch_namespaced_job("later", NS, {"spec": {"suspend": False}})
    done = await kube.fake.wait_for("Job", NS, "later", finished)

    assert pods_of(kube, "later") and has_condition(done, "Complete")
    assert "startTime" not in suspended["status"]
    resumed = condition(done, "Suspended")
    assert resumed is not None
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


async def test_suspending_a_running_job_stops_its_pod_without_a_failure(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("long", "sleep 600"))
    await kube.fake.wait_for("Job", NS, "long", lambda j: (j or {})["status"].get("ready") == 1)

    await kube.batch.patch_namespaced_job("long", NS, {"spec": {"suspend": True}})
    job = await kube.fake.wait_for(
        "Job",
        NS,
        "long",
        lambda j: has_condition(j, "Suspended") and not pods_of(kube, "long"),
    )

    assert "failed" not in job["status"]
    assert "active" not in job["status"]


async def test_a_pod_waits_in_container_creating_for_its_secret_volume(kube: Kube) -> None:
    volumes = {"volumes": [{"name": "payload", "secret": {"secretName": "payload"}}]}
    await kube.batch.create_namespaced_job(NS, job_manifest("needs", pod_spec=volumes))
    await kube.fake.wait_for(
        "Event",
        NS,
        "",
        lambda _: any(e["reason"] == "FailedMount" for e in kube.fake.list("Event", NS)),
    )
    [pod] = pods_of(kube, "needs")
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]

    await kube.core.create_namespaced_secret(NS, secret_manifest("payload", {"k": "v"}))
    done = await kube.fake.wait_for("Job", NS, "needs", finished)

    assert (phase(pod), waiting["reason"]) == ("Pending", "ContainerCreating")
    assert has_condition(done, "Complete")


async def test_a_missing_env_secret_is_a_create_container_config_error(kube: Kube) -> None:
    env = {"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}}}]}
    await kube.batch.create_namespaced_job(NS, job_manifest("env", container=env))

    def config_error(job: JSON | None) -> bool:
        pods = pods_of(kube, "env")
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        reason = statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None
        return reason == "CreateContainerConfigError"

    await kube.fake.wait_for("Job", NS, "env", config_error)
    await kube.core.create_namespaced_secret(NS, secret_manifest("s", {"t": "x"}))

    await kube.fake.wait_for("Job", NS, "env", finished)


async def test_an_image_that_does_not_exist_backs_off_forever(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("pull", image="x/does-not-exist:1"))

    def backing_off(job: JSON | None) -> bool:
        pods = pods_of(kube, "pull")
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        reason = statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None
        return reason == "ImagePullBackOff"

    job = await kube.fake.wait_for("Job", NS, "pull", backing_off)
    [pod] = pods_of(kube, "pull")

    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    # As a kubelet of Kubernetes 1.32 or later says it: the back-off, then the last pull's error.
    assert waiting["message"] == (
        'Back-off pulling image "x/does-not-exist:1": ErrImagePull: rpc error: code = NotFound '
        'desc = failed to pull and unpack image "x/does-not-exist:1": not found'
    )
    assert phase(pod) == "Pending"
    assert (job["status"]["active"], job["status"]["ready"]) == (1, 0)


async def test_a_pod_that_asks_for_more_than_the_node_has_stays_unschedulable(kube: Kube) -> None:
    big = {"resources": {"requests": {"cpu": "100m", "memory": "1Ti"}}}
    await kube.batch.create_namespaced_job(NS, job_manifest("big", container=big))

    def unschedulable(job: JSON | None) -> bool:
        pods = pods_of(kube, "big")
        conditions = pods[0]["status"].get("conditions", []) if pods else []
        return any(c.get("reason") == "Unschedulable" for c in conditions)

    job = await kube.fake.wait_for("Job", NS, "big", unschedulable)
    [pod] = pods_of(kube, "big")

    assert pod["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": pod["status"]["conditions"][0]["lastTransitionTime"],
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes "
            "are available: 1 No preemption victims found for incoming pod.",
        }
    ]
    assert "nodeName" not in pod["spec"] and "containerStatuses" not in pod["status"]
    assert phase(pod) == "Pending"
    assert (job["status"]["active"], job["status"]["ready"]) == (1, 0)
    events = kube.fake.list("Event", NS)
    assert [
        e["reason"] for e in events if e["involvedObject"]["name"] == pod["metadata"]["name"]
    ] == ["FailedScheduling"]


async def test_a_pod_whose_limits_alone_exceed_the_node_is_unschedulable_too(kube: Kube) -> None:
    # Without requests, the API server takes the limits as the requests.
    limits = {"resources": {"limits": {"cpu": "64", "memory": "1Gi"}}}
    await kube.batch.create_namespaced_job(NS, job_manifest("wide", container=limits))

    def says_why(job: JSON | None) -> bool:
        pods = pods_of(kube, "wide")
        conditions = pods[0]["status"].get("conditions", []) if pods else []
        return any("1 Insufficient cpu." in c.get("message", "") for c in conditions)

    await kube.fake.wait_for("Job", NS, "wide", says_why)


async def test_restart_on_failure_counts_restarts_against_the_backoff_limit(kube: Kube) -> None:
    manifest = job_manifest("again", "exit 1", restart_policy="OnFailure", backoffLimit=1)

    job = await run_to_end(kube, manifest)

    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    assert len(pods_of(kube, "again")) <= 1


async def test_completions_and_parallelism_run_pods_side_by_side(kube: Kube) -> None:
    job = await run_to_end(kube, job_manifest("many", completions=3, parallelism=2))

    assert job["status"]["succeeded"] == 3
    assert len(pods_of(kube, "many")) == 3


async def test_ttl_after_finished_deletes_the_job_and_its_pods(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("brief", ttlSecondsAfterFinished=1))

    await kube.fake.wait_for("Job", NS, "brief", lambda j: j is None)
    await kube.fake.settle()

    assert pods_of(kube, "brief") == []


async def test_deleting_a_running_job_leaves_the_controller_quiet(kube: Kube) -> None:
    await kube.batch.create_namespaced_job(NS, job_manifest("gone", "sleep 600"))
    await kube.fake.wait_for("Job", NS, "gone", lambda j: (j or {})["status"].get("ready") == 1)

    await kube.batch.delete_namespaced_job("gone", NS, propagation_policy="Background")
    await kube.fake.wait_for("Job", NS, "gone", lambda _: pods_of(kube, "gone") == [])
    await kube.fake.settle()


async def test_a_container_log_is_what_its_script_echoed(kube: Kube) -> None:
    await run_to_end(kube, job_manifest("talk", "echo hello; sleep 1; echo 'bye now'; exit 0"))
    [pod] = pods_of(kube, "talk")

    log = await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)
    tail = await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS, tail_lines=1)

    assert (log, tail) == ("hello\nbye now\n", "bye now\n")


async def test_a_followed_log_streams_until_the_container_ends(kube: Kube) -> None:
    script = "echo start; sleep 4; echo end; exit 0"
    await kube.batch.create_namespaced_job(NS, job_manifest("follow", script))
    await kube.fake.wait_for("Job", NS, "follow", lambda j: (j or {})["status"].get("ready") == 1)
    [pod] = pods_of(kube, "follow")

    log = await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS, follow=True)

    assert log == "start\nend\n"
    assert phase(kube.fake.get("Pod", NS, pod["metadata"]["name"])) == "Succeeded"


async def test_a_log_before_the_container_starts_is_400(kube: Kube) -> None:
    volumes = {"volumes": [{"name": "v", "secret": {"secretName": "missing"}}]}
    await kube.batch.create_namespaced_job(NS, job_manifest("early", pod_spec=volumes))
    await kube.fake.wait_for("Job", NS, "early", lambda _: bool(pods_of(kube, "early")))
    [pod] = pods_of(kube, "early")

    with pytest.raises(ApiException) as exc:
        await kube.core.read_namespaced_pod_log(pod["metadata"]["name"], NS)

    assert exc.value.status == 400
    assert "is waiting to start: ContainerCreating" in exc.value.body


async def test_events_tell_the_story_of_a_job(kube: Kube) -> None:
    job = await run_to_end(kube, job_manifest("told"))
    [pod] = pods_of(kube, "told")

    pod_events = await kube.core.list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod['metadata']['name']}"
    )
    job_events = await kube.core.list_namespaced_event(
        NS, field_selector="involvedObject.kind=Job,involvedObject.name=told"
    )

    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= {
        e.reason for e in pod_events.items
    }
    assert {"SuccessfulCreate", "Completed"} <= {e.reason for e in job_events.items}
    assert all(e.involved_object.uid == job["metadata"]["uid"] for e in job_events.items)
