"""What a job's attempt record keeps, pure (scheduler/backends/kubernetes/attempts.py): the tail
of a log, the log as served, the ConfigMap's patches within its size, the status a Job's
annotation keeps of an attempt (why it waited to start too) and the annotation's patches."""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import json
import random
from typing import Any

import pytest

from scheduler.backends.base import ContainerState, Identity, Kept, PodRecord, Waited
from scheduler.backends.kubernetes.attempts import (
    DELETED,
    MAX_KEPT_ATTEMPTS,
    STOPPED,
    KeptLog,
    annotation_key,
    annotation_patch,
    kept_on,
    kept_summary,
    log_tail,
    new_record,
    read_kept,
    record_patch,
    served,
)
from scheduler.backends.kubernetes.records import WAITED_MESSAGE_CHARS
from tests.factories import JSON, at, pod_record

IDENTITY = Identity(app="myapp", environment="dev", component="compute", namespace="myapp-dev")
JOB = "compute-20240501120000-abcdefgh"
JOB_UID = "job-uid"


def stamped(*texts: str) -> bytes:
    """A log as the kubelet serves it with timestamps, one line a second from T0."""
    return b"".join(
        f"2024-05-01T12:00:{second:02d}.123456789Z {text}\n".encode()
        for second, text in enumerate(texts)
    )


def noise(size: int, seed: int, width: int = 76) -> list[str]:
    """`size` characters of base64 of random bytes, in lines of `width`: text that hardly
    compresses (gzip gets it to about three quarters)."""
    text = base64.b64encode(random.Random(seed).randbytes(size * 3 // 4)).decode()
    return [text[start : start + width] for start in range(0, len(text), width)]


# -- the log's tail --------------------------------------------------------------------------


def test_a_log_that_fits_is_kept_whole_and_not_cut() -> None:
    log = stamped("aaaa", "bbbb", "cccc")
    assert log_tail(log, 15) == (log, False)


def test_a_tail_counts_its_lines_without_their_timestamps() -> None:
    # Each line is 5 bytes as a client reads it without timestamps (32 with them).
    log = stamped("aaaa", "bbbb", "cccc")
    assert log_tail(log, 10) == (b"".join(log.splitlines(keepends=True)[1:]), True)


def test_a_tail_keeps_only_whole_lines() -> None:
    log = stamped("aaaa", "bbbb", "cccc")
    tail, cut = log_tail(log, 9)  # room for one line and most of another
    assert tail.decode().endswith(" cccc\n") and tail.count(b"\n") == 1
    assert cut


def test_a_last_line_longer_than_the_limit_leaves_nothing_kept() -> None:
    assert log_tail(stamped("short", "x" * 100), 50) == (b"", True)


def test_a_line_without_a_timestamp_counts_whole() -> None:
    assert log_tail(b"plain line\n", 11) == (b"plain line\n", False)
    assert log_tail(b"plain line\n", 10) == (b"", True)


# -- the log as served ------------------------------------------------------------------------


LOG = stamped("first", "second", "third")


@pytest.mark.parametrize(
    ("tail", "timestamps", "expected"),
    [
        (None, False, b"first\nsecond\nthird\n"),
        (1, False, b"third\n"),
        (2, False, b"second\nthird\n"),
        (10, False, b"first\nsecond\nthird\n"),
        (0, False, b""),
        (None, True, LOG),
        (1, True, stamped("first", "second", "third").splitlines(keepends=True)[-1]),
    ],
)
def test_a_kept_log_is_served_with_the_tail_and_timestamps_asked_for(
    tail: int | None, timestamps: bool, expected: bytes
) -> None:
    assert served(LOG, tail=tail, timestamps=timestamps) == expected


# -- the ConfigMap's patches ------------------------------------------------------------------


def applied(record: JSON, patch: JSON | None) -> JSON:
    """The record once the API server has merged `patch` (a null deletes a key) and given it a
    new resourceVersion."""
    assert patch is not None
    merged = copy.deepcopy(record)
    for field in ("data", "binaryData"):
        values = dict(merged.get(field) or {})
        for key, value in (patch.get(field) or {}).items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        merged[field] = values
    metadata = merged["metadata"]
    metadata["resourceVersion"] = str(int(metadata.get("resourceVersion") or 0) + 1)
    return merged


def stored_size(record: JSON) -> int:
    """How big the API server counts a ConfigMap (1 MiB at most): its data, and its binary
    data decoded."""
    data = sum(len(value.encode()) for value in (record.get("data") or {}).values())
    binary = (record.get("binaryData") or {}).values()
    return data + sum(len(base64.b64decode(value)) for value in binary)


def empty_record() -> JSON:
    record = new_record(IDENTITY, JOB, JOB_UID)
    record["metadata"]["resourceVersion"] = "7"
    return record


def kept_log(
    pod: str, text: bytes, *, final: bool = True, second: int = 0, **fields: Any
) -> KeptLog:
    return KeptLog(pod=pod, created=at(second), log=text, final=final, **fields)


def test_a_new_record_keeps_the_log_gzipped_and_the_result_in_its_meta() -> None:
    log = stamped("first", "second")
    record = applied(
        empty_record(),
        record_patch(empty_record(), kept_log("p1", log, result="done"), record_bytes=65536),
    )
    assert gzip.decompress(base64.b64decode(record["binaryData"]["p1.log"])) == log
    assert json.loads(record["data"]["p1.json"]) == {
        "created": "2024-05-01T12:00:00Z",
        "final": True,
        "result": "done",
    }
    assert read_kept(record, "p1") == kept_log("p1", log, result="done")


def test_a_record_is_owned_by_its_job_and_labelled() -> None:
    metadata = new_record(IDENTITY, JOB, JOB_UID)["metadata"]
    assert metadata["name"] == f"{JOB}-attempts"
    assert metadata["labels"]["radix.equinor.com/attempts"] == "true"
    [owner] = metadata["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", JOB, JOB_UID)
    assert owner["controller"] is True


def test_a_patch_is_on_condition_that_the_record_is_as_read() -> None:
    patch = record_patch(empty_record(), kept_log("p1", stamped("x")), record_bytes=65536)
    assert patch is not None and patch["metadata"] == {"resourceVersion": "7"}


def test_keeping_what_is_kept_already_changes_nothing() -> None:
    kept = kept_log("p1", stamped("first"), result="done")
    record = applied(empty_record(), record_patch(empty_record(), kept, record_bytes=65536))
    assert record_patch(record, kept, record_bytes=65536) is None


def test_a_partial_log_after_a_final_one_changes_nothing() -> None:
    final = kept_log("p1", stamped("first", "second", "last"))
    record = applied(empty_record(), record_patch(empty_record(), final, record_bytes=65536))
    partial = kept_log("p1", stamped("first"), final=False)
    assert record_patch(record, partial, record_bytes=65536) is None
    assert read_kept(record, "p1") == final


def test_a_final_log_replaces_a_partial_one_and_a_later_result_is_added() -> None:
    partial = kept_log("p1", stamped("first"), final=False)
    record = applied(empty_record(), record_patch(empty_record(), partial, record_bytes=65536))
    final = kept_log("p1", stamped("first", "second"), result="done")
    record = applied(record, record_patch(record, final, record_bytes=65536))
    assert read_kept(record, "p1") == final


def test_a_result_alone_keeps_the_log_kept_before() -> None:
    final = kept_log("p1", stamped("first"))
    record = applied(empty_record(), record_patch(empty_record(), final, record_bytes=65536))
    status_only = KeptLog(pod="p1", created=at(0), log=None, result="done")
    record = applied(record, record_patch(record, status_only, record_bytes=65536))
    assert read_kept(record, "p1") == dataclasses.replace(final, result="done")


def test_the_oldest_attempts_logs_are_dropped_first_to_fit_the_record() -> None:
    record_bytes = 8000
    logs = {f"p{index}": stamped(*noise(4000, seed=index)) for index in range(3)}
    record = empty_record()
    for second, (pod, log) in enumerate(logs.items()):
        patch = record_patch(record, kept_log(pod, log, second=second), record_bytes=record_bytes)
        record = applied(record, patch)
        assert stored_size(record) <= record_bytes
    oldest = read_kept(record, "p0")
    assert oldest is not None and (oldest.log, oldest.dropped) == (None, True)
    assert "p0.log" not in record["binaryData"]
    for pod in ("p1", "p2"):
        assert read_kept(record, pod) == kept_log(pod, logs[pod], second=int(pod[1:]))


def test_a_dropped_log_s_result_is_still_kept() -> None:
    record_bytes = 8000
    record = empty_record()
    first = kept_log("p0", stamped(*noise(4000, seed=0)), result="first result")
    record = applied(record, record_patch(record, first, record_bytes=record_bytes))
    for index in (1, 2):
        kept = kept_log(f"p{index}", stamped(*noise(4000, seed=index)), second=index)
        record = applied(record, record_patch(record, kept, record_bytes=record_bytes))
    oldest = read_kept(record, "p0")
    assert oldest is not None and (oldest.dropped, oldest.result) == (True, "first result")


def test_a_single_log_too_large_even_alone_is_cut_to_its_tail_and_marked_truncated() -> None:
    record_bytes = 8000
    log = stamped(*noise(20000, seed=1))
    record = applied(
        empty_record(), record_patch(empty_record(), kept_log("p1", log), record_bytes=record_bytes)
    )
    kept = read_kept(record, "p1")
    assert kept is not None and kept.log is not None and kept.truncated
    assert stored_size(record) <= record_bytes
    assert log.endswith(kept.log) and log[: -len(kept.log)].endswith(b"\n")  # whole lines
    assert len(kept.log) >= len(log) // 4  # halved as often as needed, no more


# -- the status on the Job --------------------------------------------------------------------


RUNNING = pod_record(
    name="p1",
    phase="Running",
    container=ContainerState("running", started_at=at(2)),
)


def summary(pod: PodRecord, kept: Kept, **options: Any) -> JSON:
    text = kept_summary(pod, kept, **{"known": None, "stopped_at": None, "now": at(60), **options})
    found: JSON = json.loads(text)
    return found


def known(text: JSON) -> PodRecord:
    """What the Job's annotation keeps, as the keeper reads it back."""
    attempt = kept_on(
        {"metadata": {"annotations": {annotation_key(text["name"]): json.dumps(text)}}}
    )
    return attempt[text["name"]]


def test_a_running_attempt_a_stop_ends_is_kept_stopped_at_the_stop() -> None:
    kept = summary(RUNNING, "partial", stopped_at=at(10))
    assert (kept["state"], kept["reason"], kept["kept"]) == ("terminated", STOPPED, "partial")
    assert (kept["startedAt"], kept["finishedAt"]) == (
        "2024-05-01T12:00:02Z",
        "2024-05-01T12:00:10Z",
    )
    assert "exitCode" not in kept


def test_a_stopped_attempt_s_own_end_keeps_it_stopped_and_adds_its_exit_code() -> None:
    stopped = known(summary(RUNNING, "partial", stopped_at=at(10)))
    killed = dataclasses.replace(
        RUNNING,
        phase="Failed",
        container=ContainerState(
            "terminated", reason="Error", exit_code=143, started_at=at(2), finished_at=at(11)
        ),
    )
    kept = summary(killed, "final", known=stopped)
    assert (kept["reason"], kept["exitCode"], kept["kept"]) == (STOPPED, 143, "final")


def test_a_stop_kept_after_its_attempt_s_end_was_kept_keeps_the_exit_code() -> None:
    # Another keeper saw the pod end (SIGTERM) before the stop's own keep, from a pod read
    # while it still ran, got to write.
    killed = dataclasses.replace(
        RUNNING,
        phase="Failed",
        container=ContainerState(
            "terminated", reason="Error", exit_code=143, started_at=at(2), finished_at=at(11)
        ),
    )
    ended = known(summary(killed, "final"))
    kept = summary(RUNNING, "partial", known=ended, stopped_at=at(10))
    assert (kept["reason"], kept["exitCode"], kept["kept"]) == (STOPPED, 143, "final")
    assert kept["finishedAt"] == "2024-05-01T12:00:11Z"


def test_an_attempt_whose_end_was_never_seen_is_kept_deleted() -> None:
    kept = summary(RUNNING, "status", now=at(30))
    assert (kept["state"], kept["reason"]) == ("terminated", DELETED)
    assert kept["finishedAt"] == "2024-05-01T12:00:30Z"
    assert "deleted" in kept["message"]


def test_an_ended_attempt_is_kept_as_it_ended() -> None:
    done = dataclasses.replace(
        RUNNING,
        phase="Succeeded",
        container=ContainerState(
            "terminated", reason="Completed", exit_code=0, started_at=at(2), finished_at=at(5)
        ),
    )
    kept = summary(done, "final")
    assert (kept["reason"], kept["exitCode"], kept["finishedAt"]) == (
        "Completed",
        0,
        "2024-05-01T12:00:05Z",
    )


def test_a_later_sight_of_a_pod_still_running_changes_nothing_kept() -> None:
    deleted = summary(RUNNING, "status", now=at(30))
    assert summary(RUNNING, "status", known=known(deleted), now=at(40)) == deleted


@pytest.mark.parametrize(
    ("before", "now", "kept"),
    [
        ("final", "status", "final"),
        ("final", "partial", "final"),
        ("partial", "status", "partial"),
        ("status", "partial", "partial"),
        ("partial", "final", "final"),
    ],
)
def test_how_much_is_kept_never_goes_down(before: Kept, now: Kept, kept: Kept) -> None:
    earlier = known(summary(RUNNING, before, stopped_at=at(10)))
    assert summary(RUNNING, now, known=earlier)["kept"] == kept


NO_ROOM = Waited("Unschedulable", "0/1 nodes are available: 1 Insufficient cpu.")


def test_why_an_attempt_waited_is_kept_with_it_and_read_back() -> None:
    kept = summary(dataclasses.replace(RUNNING, waited=NO_ROOM), "partial", stopped_at=at(10))
    assert kept["waited"] == {
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu.",
    }
    assert known(kept).waited == NO_ROOM


def test_an_attempt_that_waited_for_nothing_worth_telling_keeps_no_reason() -> None:
    kept = summary(RUNNING, "partial", stopped_at=at(10))
    assert "waited" not in kept
    assert known(kept).waited is None


def test_a_reason_without_a_message_is_kept_as_a_reason() -> None:
    kept = summary(
        dataclasses.replace(RUNNING, waited=Waited("CreateContainerError")), "status", now=at(30)
    )
    assert kept["waited"] == {"reason": "CreateContainerError"}
    assert known(kept).waited == Waited("CreateContainerError")


def test_a_long_message_of_why_an_attempt_waited_is_kept_cut() -> None:
    long = Waited("Unschedulable", "x" * (WAITED_MESSAGE_CHARS + 100))
    kept = summary(dataclasses.replace(RUNNING, waited=long), "status", now=at(30))
    assert kept["waited"]["message"] == "x" * WAITED_MESSAGE_CHARS


def test_a_keeper_that_did_not_see_the_wait_keeps_the_reason_another_kept() -> None:
    # Another replica (or this one before it restarted) saw the pod wait and kept it stopped.
    earlier = known(
        summary(dataclasses.replace(RUNNING, waited=NO_ROOM), "partial", stopped_at=at(10))
    )
    done = dataclasses.replace(
        RUNNING,
        phase="Failed",
        container=ContainerState(
            "terminated", reason="Error", exit_code=143, started_at=at(2), finished_at=at(11)
        ),
    )
    assert summary(done, "final", known=earlier)["waited"]["reason"] == "Unschedulable"


def test_the_reason_seen_last_replaces_one_kept_before() -> None:
    pulled = Waited("ImagePullBackOff", 'Back-off pulling image "x"')
    earlier = known(summary(dataclasses.replace(RUNNING, waited=NO_ROOM), "status", now=at(30)))
    kept = summary(dataclasses.replace(RUNNING, waited=pulled), "status", known=earlier)
    assert known(kept).waited == pulled


@pytest.mark.parametrize("text", [{"reason": 3}, {"message": "no reason"}, "Unschedulable"])
def test_an_unreadable_reason_kept_is_none(text: Any) -> None:
    kept = {**summary(RUNNING, "status", now=at(30)), "waited": text}
    assert known(kept).waited is None


# -- the annotation's patches -----------------------------------------------------------------


def job_keeping(*pods: PodRecord) -> JSON:
    annotations = {
        annotation_key(pod.name): kept_summary(
            pod, "final", known=None, stopped_at=None, now=at(60)
        )
        for pod in pods
    }
    return {"metadata": {"name": JOB, "resourceVersion": "5", "annotations": annotations}}


def ended(name: str, second: int) -> PodRecord:
    return pod_record(
        name=name,
        created=at(second),
        phase="Failed",
        container=ContainerState("terminated", reason="Error", exit_code=1, finished_at=at(second)),
    )


def test_an_annotation_patch_keeps_the_attempt_on_condition_that_the_job_is_as_read() -> None:
    pod = ended("p1", 1)
    text = kept_summary(pod, "final", known=None, stopped_at=None, now=at(60))
    assert annotation_patch(job_keeping(), "p1", text) == {
        "metadata": {"resourceVersion": "5", "annotations": {annotation_key("p1"): text}}
    }


def test_an_annotation_patch_is_none_when_the_job_keeps_that_already() -> None:
    pod = ended("p1", 1)
    text = kept_summary(pod, "final", known=None, stopped_at=None, now=at(60))
    assert annotation_patch(job_keeping(pod), "p1", text) is None


def test_an_annotation_patch_forgets_the_oldest_attempts_beyond_the_most_kept() -> None:
    # Kept in another order than they were created: the oldest by creation goes.
    pods = [ended(f"p{index:03d}", index) for index in reversed(range(MAX_KEPT_ATTEMPTS))]
    job = job_keeping(*pods)
    newest = ended("p-new", MAX_KEPT_ATTEMPTS)
    text = kept_summary(newest, "final", known=None, stopped_at=None, now=at(200))
    patch = annotation_patch(job, newest.name, text)
    assert patch is not None
    assert patch["metadata"]["annotations"] == {
        annotation_key("p-new"): text,
        annotation_key("p000"): None,
    }


def test_an_annotation_patch_below_the_most_kept_forgets_nothing() -> None:
    job = job_keeping(*(ended(f"p{index:03d}", index) for index in range(MAX_KEPT_ATTEMPTS - 1)))
    newest = ended("p-new", MAX_KEPT_ATTEMPTS)
    text = kept_summary(newest, "final", known=None, stopped_at=None, now=at(200))
    patch = annotation_patch(job, newest.name, text)
    assert patch is not None and list(patch["metadata"]["annotations"]) == [annotation_key("p-new")]
