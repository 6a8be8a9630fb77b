"""The local backend end to end: the scheduler app in process, each job's command a real child
process, state in SQLite under `tmp_path/state`. Jobs find the fast `sleep` shim on PATH."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from scheduler.backends.local import sandbox
from tests.conftest import (
    TEST_CONFIG,
    ClientFactory,
    job_status,
    post_job,
    wait_for_status,
    wait_until,
)
from tests.factories import Client

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")

LONG = "exec sleep 100000"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
# Generous, for a busy machine: only a hung job should ever reach it.
TIMEOUT_SECONDS = 30.0


def shell(script: str, **fields: Any) -> dict[str, Any]:
    """A create body whose command is `sh -c script`."""
    return {"command": ["sh", "-c", script], **fields}


def log_texts(tmp_path: Path, job: str, attempt: int = 0) -> list[str]:
    """The attempt's log lines without their leading RFC 3339 time."""
    path = tmp_path / "state" / "logs" / job / f"{attempt}.log"
    if not path.exists():
        return []
    return [line.split(" ", 1)[1] for line in path.read_text().splitlines()]


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def process_group(pgid: int) -> list[int]:
    """The live processes of a process group: a job and whatever it started."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def read_pid(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


async def pid_written_to(path: Path) -> int:
    """The pid, as this test sees it, of the job process that wrote its pid into `path` (as `echo
    $$`, which gives the pid in the job's own PID namespace): the one that has `path` in its
    environment and that pid as its innermost."""

    async def written() -> bool:
        return read_pid(path) is not None

    await wait_until(written, TIMEOUT_SECONDS)
    pid = read_pid(path)
    assert pid is not None

    def candidates() -> list[int]:
        return [
            candidate
            for candidate in map(int, filter(str.isdigit, os.listdir("/proc")))
            if f"={path}".encode() in environ_of(candidate) and innermost_pid(candidate) == pid
        ]

    # While the job's shell execs its command, its environment cannot be read for a moment.
    async def found() -> bool:
        return len(candidates()) == 1

    await wait_until(found, TIMEOUT_SECONDS)
    [host_pid] = candidates()
    return host_pid


async def running_job(client: Client, tmp_path: Path, **fields: Any) -> tuple[str, int]:
    """A job that runs until stopped, once Running: its name, and the pid (as this test sees it)
    of its process."""
    pid_file = tmp_path / "pid"
    body = shell(f'echo $$ > "$PID_FILE"; {LONG}', variables={"PID_FILE": str(pid_file)})
    name = (await post_job(client, {**body, **fields}))["name"]
    pid = await pid_written_to(pid_file)
    await wait_for_status(client, name, "Running")
    return name, pid


def environ_of(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def innermost_pid(pid: int) -> int | None:
    """`pid` as the process sees itself, in its innermost PID namespace."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    [line] = [line for line in status.splitlines() if line.startswith("NSpid:")]
    return int(line.split()[-1])


def host_has_compute_dir() -> bool:
    return Path("/compute").exists()


async def wait_for_log(tmp_path: Path, job: str, text: str) -> None:
    async def logged() -> bool:
        return text in log_texts(tmp_path, job)

    await wait_until(logged, TIMEOUT_SECONDS)


async def wait_for_end(client: Client, name: str) -> str:
    """The status a job ended with."""
    ended = ""

    async def has_ended() -> bool:
        nonlocal ended
        ended = (await job_status(client, name))["status"]
        return ended in ("Succeeded", "Failed", "Stopped")

    await wait_until(has_ended, TIMEOUT_SECONDS)
    return ended


async def job_names(client: Client) -> list[str]:
    response = await client.get("/api/v1/jobs")
    assert response.status == 200, await response.text()
    return [job["name"] for job in await response.json()]


# -- what runs -------------------------------------------------------------------------------


async def test_a_job_reads_its_payload_at_exactly_the_payload_path(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    had_compute = host_has_compute_dir()
    client = await local_scheduler_factory()
    body = shell('cat /compute/args/payload; echo; echo "found at $RADIX_PAYLOAD_PATH"')
    name = (await post_job(client, {**body, "payload": "the payload"}))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert log_texts(tmp_path, name) == ["the payload", "found at /compute/args"]
    assert host_has_compute_dir() == had_compute, "the mount must not leak to the host"


async def test_without_a_sandbox_the_job_finds_its_payload_through_the_variable_and_one_warning(
    local_scheduler_factory: ClientFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def no_sandbox() -> str:
        return "no user namespaces here"

    monkeypatch.setattr(sandbox, "probe", no_sandbox)
    caplog.set_level(logging.INFO)
    client = await local_scheduler_factory()
    body = shell('cat "$RADIX_PAYLOAD_PATH/payload"; echo; echo "$RADIX_PAYLOAD_PATH"')
    names = [(await post_job(client, {**body, "payload": f"p{i}"}))["name"] for i in range(2)]
    for index, name in enumerate(names):
        await wait_for_status(client, name, "Succeeded")
        payload_dir = tmp_path / "state" / "payloads" / name
        assert log_texts(tmp_path, name) == [f"p{index}", str(payload_dir)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no user namespaces here" in warnings[0].getMessage()
    assert "RADIX_PAYLOAD_PATH" in warnings[0].getMessage()


async def test_the_log_says_once_that_images_are_not_run(
    local_scheduler_factory: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await local_scheduler_factory()
    name = (await post_job(client))["name"]
    await wait_for_status(client, name, "Succeeded")
    said = [r for r in caplog.records if "images are not pulled or run" in r.getMessage()]
    assert len(said) == 1


async def test_variables_and_radix_variables_reach_the_job(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    script = 'echo "$MODE $EXTRA $RADIX_JOB_NAME $RADIX_APP $RADIX_ENVIRONMENT $RADIX_COMPONENT"'
    body = shell(script, variables={"EXTRA": "from-the-request"})
    name = (await post_job(client, body))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert log_texts(tmp_path, name) == [f"test from-the-request {name} myapp dev compute"]


async def test_the_requests_command_and_args_replace_the_radixconfigs(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    body = {"command": ["echo"], "args": ["one", "two"]}
    name = (await post_job(client, body))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert log_texts(tmp_path, name) == ["one two"]


async def test_stdout_and_stderr_go_to_the_attempts_log(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    name = (await post_job(client, shell("echo out; echo err >&2")))["name"]
    await wait_for_status(client, name, "Succeeded")
    assert log_texts(tmp_path, name) == ["out", "err"]


async def expect_no_command(response: Any) -> None:
    assert response.status == 422, await response.text()
    answer = await response.json()
    assert answer["reason"] == "Invalid"
    assert answer["message"].startswith("command: ")


async def test_a_job_without_a_command_is_422_naming_the_field(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    config = tmp_path / "radixconfig.yaml"
    config.write_text(
        TEST_CONFIG.read_text().replace('command: ["sh", "-c", "sleep 2; exit 0"]', "")
    )
    assert "command" not in config.read_text()
    client = await local_scheduler_factory(RADIX_CONFIG_FILE=str(config))
    await expect_no_command(await client.post("/api/v1/jobs", json={}))
    assert (await job_names(client)) == []
    # The request's own command is enough.
    await post_job(client, {"command": ["echo"], "args": ["x"]})


async def test_a_request_that_clears_the_command_is_422_too(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    await expect_no_command(await client.post("/api/v1/jobs", json={"command": []}))


# -- how jobs end ----------------------------------------------------------------------------


async def test_a_non_zero_exit_fails_the_job_with_its_code(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    name = (await post_job(client, shell("exit 3", backoffLimit=0)))["name"]
    status = await wait_for_status(client, name, "Failed")
    assert "exited with code 3" in status["message"]
    [pod] = status["podStatuses"]
    assert (pod["exitCode"], pod["replicaStatus"]["status"]) == (3, "Failed")


async def test_the_time_limit_kills_the_process_and_fails_the_job(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    pid_file = tmp_path / "pid"
    body = shell(f'echo $$ > "$PID_FILE"; {LONG}', timeLimitSeconds=1)
    name = (await post_job(client, {**body, "variables": {"PID_FILE": str(pid_file)}}))["name"]
    pid = await pid_written_to(pid_file)
    status = await wait_for_status(client, name, "Failed", TIMEOUT_SECONDS)
    assert status["message"].startswith(DEADLINE_MESSAGE)
    assert not is_running(pid)
    assert process_group(pid) == []
    [pod] = status["podStatuses"]
    # As a container killed by a signal: 128 + its number, never negative.
    assert pod["exitCode"] in (128 + 15, 128 + 9)


async def test_a_process_that_ignores_term_is_killed_after_the_grace_period(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory(options={"kill_grace_seconds": 3.0})
    pid_file = tmp_path / "pid"
    script = "trap 'echo got TERM' TERM; echo $$ > \"$PID_FILE\"; while :; do sleep 1; done"
    body = shell(script, variables={"PID_FILE": str(pid_file)})
    name = (await post_job(client, body))["name"]
    pid = await pid_written_to(pid_file)
    await wait_for_status(client, name, "Running")
    assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
    await wait_for_log(tmp_path, name, "got TERM")
    assert is_running(pid), "TERM was trapped: only KILL ends it"
    await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)
    assert not is_running(pid)
    assert process_group(pid) == []


async def test_the_backoff_limit_retries_as_new_attempts(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    name = (await post_job(client, shell("exit 3", backoffLimit=2)))["name"]
    status = await wait_for_status(client, name, "Failed", TIMEOUT_SECONDS)
    assert status["message"].startswith(BACKOFF_MESSAGE)
    assert status["failed"] == 3
    pods = status["podStatuses"]
    assert [(p["podIndex"], p["exitCode"]) for p in pods] == [(0, 3), (1, 3), (2, 3)]
    assert len({p["name"] for p in pods}) == 3


def exit_code_rule(action: str, *codes: int) -> dict[str, Any]:
    rule = {"action": action, "onExitCodes": {"operator": "In", "values": list(codes)}}
    return {"failurePolicy": {"rules": [rule]}}


async def test_a_failjob_rule_fails_the_job_at_once(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    body = shell("exit 42", backoffLimit=5, **exit_code_rule("FailJob", 42))
    name = (await post_job(client, body))["name"]
    status = await wait_for_status(client, name, "Failed", TIMEOUT_SECONDS)
    assert "failed with exit code 42 matching FailJob rule at index 0" in status["message"]
    assert len(status["podStatuses"]) == 1


async def test_an_ignore_rule_retries_without_counting_the_failure(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    marker = tmp_path / "tried"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 42"
    body = shell(script, backoffLimit=0, **exit_code_rule("Ignore", 42))
    name = (await post_job(client, body))["name"]
    status = await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    assert [p["exitCode"] for p in status["podStatuses"]] == [42, 0]
    assert status["failed"] == 0


async def test_a_count_rule_counts_toward_the_backoff_limit(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory()
    body = shell("exit 42", backoffLimit=1, **exit_code_rule("Count", 42))
    name = (await post_job(client, body))["name"]
    status = await wait_for_status(client, name, "Failed", TIMEOUT_SECONDS)
    assert status["message"].startswith(BACKOFF_MESSAGE)
    assert [p["exitCode"] for p in status["podStatuses"]] == [42, 42]


# -- stopping, waiting, deleting -------------------------------------------------------------


async def test_stopping_a_running_job_ends_its_process(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    name, pid = await running_job(client, tmp_path)
    response = await client.post(f"/api/v1/jobs/{name}/stop")
    assert response.status == 200, await response.text()
    assert (await job_status(client, name))["status"] in ("Stopping", "Stopped")
    status = await wait_for_status(client, name, "Stopped", TIMEOUT_SECONDS)
    assert not is_running(pid)
    # As on Kubernetes: a pod that was running when the stop came is Stopped, not Failed.
    assert [p["replicaStatus"]["status"] for p in status["podStatuses"]] == ["Stopped"]


async def test_deleting_a_running_job_ends_its_process_and_removes_its_files(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    name, pid = await running_job(client, tmp_path, payload="p")
    assert (await client.delete(f"/api/v1/jobs/{name}")).status == 200
    assert (await client.get(f"/api/v1/jobs/{name}")).status == 404

    # As on Kubernetes, the answer does not wait for the process: TERM now, KILL after the grace.
    async def ended() -> bool:
        return not is_running(pid)

    await wait_until(ended)
    assert not (tmp_path / "state" / "logs" / name).exists()
    assert not (tmp_path / "state" / "payloads" / name).exists()


async def test_a_stop_right_after_the_create_is_never_lost(
    local_scheduler_factory: ClientFactory,
) -> None:
    client = await local_scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="100")
    names = []
    for index in range(30):
        name = (await post_job(client, shell("exec sleep 40")))["name"]
        # Let the job's start get a little further each time before the stop comes.
        for _ in range(index % 6):
            await asyncio.sleep(0)
        assert (await client.post(f"/api/v1/jobs/{name}/stop")).status == 200
        names.append(name)
    ends = {name: await wait_for_end(client, name) for name in names}
    assert ends == dict.fromkeys(names, "Stopped")


async def test_jobs_beyond_max_parallel_wait_and_can_be_stopped_or_deleted(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    ran = tmp_path / "ran"
    record = {"variables": {"RAN": str(ran)}}
    running = (await post_job(client, shell(LONG)))["name"]
    await wait_for_status(client, running, "Running")
    stopped, deleted = [
        (await post_job(client, shell('echo "$RADIX_JOB_NAME" >> "$RAN"', **record)))["name"]
        for _ in range(2)
    ]
    assert (await job_status(client, stopped))["status"] == "Waiting"
    assert (await job_status(client, deleted))["status"] == "Waiting"
    assert (await client.post(f"/api/v1/jobs/{stopped}/stop")).status == 200
    await wait_for_status(client, stopped, "Stopped")
    assert (await client.delete(f"/api/v1/jobs/{deleted}")).status == 200
    assert (await client.get(f"/api/v1/jobs/{deleted}")).status == 404
    # The slot frees; a new job runs, and neither of the two ever did.
    assert (await client.post(f"/api/v1/jobs/{running}/stop")).status == 200
    last = (await post_job(client, shell('echo "$RADIX_JOB_NAME" >> "$RAN"', **record)))["name"]
    await wait_for_status(client, last, "Succeeded", TIMEOUT_SECONDS)
    assert ran.read_text().split() == [last]
    assert (await job_status(client, stopped))["status"] == "Stopped"


async def test_a_job_stopped_while_it_waited_runs_when_restarted(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    ran = tmp_path / "ran"
    running = (await post_job(client, shell(LONG)))["name"]
    await wait_for_status(client, running, "Running")
    waiting = await post_job(client, shell('echo ran > "$RAN"', variables={"RAN": str(ran)}))
    assert (await client.post(f"/api/v1/jobs/{waiting['name']}/stop")).status == 200
    await wait_for_status(client, waiting["name"], "Stopped")
    assert (await client.post(f"/api/v1/jobs/{running}/stop")).status == 200
    # The stop was for the run it never had: the restarted job runs to its end.
    assert (await client.post(f"/api/v1/jobs/{waiting['name']}/restart")).status == 200
    await wait_for_status(client, waiting["name"], "Succeeded", TIMEOUT_SECONDS)
    assert ran.read_text() == "ran\n"


async def test_waiting_jobs_start_in_submission_order(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory(SCHEDULER_MAX_PARALLEL="1")
    order = tmp_path / "order"
    body = shell('echo "$RADIX_JOB_NAME" >> "$ORDER"; sleep 1', variables={"ORDER": str(order)})
    names = [(await post_job(client, body))["name"] for _ in range(5)]
    for name in names:
        await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    assert order.read_text().split() == names


# -- logs, restarts, pruning -----------------------------------------------------------------


async def test_a_log_keeps_its_last_lines_within_the_limit(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    limit = 64 * 1024
    client = await local_scheduler_factory(SCHEDULER_LOG_LIMIT_BYTES=str(limit))
    lines = 150_000  # about 1 MiB of output
    name = (await post_job(client, shell(f"seq 1 {lines}")))["name"]
    await wait_for_status(client, name, "Succeeded", TIMEOUT_SECONDS)
    log_file = tmp_path / "state" / "logs" / name / "0.log"
    assert log_file.stat().st_size <= limit
    kept = [int(text) for text in log_texts(tmp_path, name)]
    assert kept[-1] == lines
    assert kept == list(range(kept[0], lines + 1)), "whole lines, the newest, none missing"
    assert len(kept) > 1000


async def test_a_restarted_scheduler_lists_the_same_jobs_with_the_same_statuses(
    local_scheduler_factory: ClientFactory,
) -> None:
    first = await local_scheduler_factory()
    succeeded = (await post_job(first, shell("exit 0", jobId="a")))["name"]
    failed = (await post_job(first, shell("exit 3", backoffLimit=0)))["name"]
    stopped = (await post_job(first, shell(LONG)))["name"]
    await wait_for_status(first, succeeded, "Succeeded")
    await wait_for_status(first, failed, "Failed")
    await wait_for_status(first, stopped, "Running")
    assert (await first.post(f"/api/v1/jobs/{stopped}/stop")).status == 200
    await wait_for_status(first, stopped, "Stopped")
    before = await (await first.get("/api/v1/jobs")).json()
    await first.close()
    second = await local_scheduler_factory()
    after = await (await second.get("/api/v1/jobs")).json()
    assert sorted(after, key=lambda j: j["name"]) == sorted(before, key=lambda j: j["name"])
    assert {j["name"] for j in after} == {succeeded, failed, stopped}


async def test_closing_the_scheduler_fails_its_running_job_saying_why(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    first = await local_scheduler_factory()
    name, pid = await running_job(first, tmp_path)
    await first.close()
    assert not is_running(pid)
    second = await local_scheduler_factory()
    status = await wait_for_status(second, name, "Failed")
    assert status["message"].startswith("the scheduler was shut down while the job ran")


async def test_closing_during_a_retry_backoff_starts_no_new_attempt(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    first = await local_scheduler_factory(options={"retry_backoff_seconds": 20.0})
    attempts = tmp_path / "attempts"
    record = {"variables": {"ATTEMPTS": str(attempts)}}
    body = shell('echo "$RADIX_JOB_NAME" >> "$ATTEMPTS"; exit 3', backoffLimit=1, **record)
    name = (await post_job(first, body))["name"]

    async def first_attempt_failed() -> bool:
        pods = (await job_status(first, name))["podStatuses"]
        return [pod["replicaStatus"]["status"] for pod in pods] == ["Failed"]

    await wait_until(first_attempt_failed, TIMEOUT_SECONDS)
    await first.close()
    assert attempts.read_text().split() == [name], "no attempt starts after the shutdown began"
    second = await local_scheduler_factory()
    status = await wait_for_end(second, name)
    assert status == "Failed"
    message = (await job_status(second, name))["message"]
    assert message.startswith("the scheduler was shut down while the job ran")


async def test_pruning_removes_records_payloads_and_logs_together(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory(RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT="2")
    state = tmp_path / "state"
    names: list[str] = []
    for code in (0, 0, 0, 3, 3, 3):
        body = shell(f"echo done; exit {code}", backoffLimit=0, payload="p")
        name = (await post_job(client, body))["name"]
        await wait_for_status(client, name, "Succeeded" if code == 0 else "Failed")
        names.append(name)
    kept = [*names[1:3], *names[4:6]]
    pruned = [names[0], names[3]]

    async def pruned_to_two_and_two() -> bool:
        return sorted(await job_names(client)) == sorted(kept)

    await wait_until(pruned_to_two_and_two, TIMEOUT_SECONDS)
    for name in pruned:
        assert not (state / "payloads" / name).exists()
        assert not (state / "logs" / name).exists()
    for name in kept:
        assert (state / "payloads" / name / "payload").read_text() == "p"
        assert log_texts(tmp_path, name) == ["done"]


# -- batches ---------------------------------------------------------------------------------


async def test_a_batch_runs_stops_and_is_deleted_on_the_local_backend(
    local_scheduler_factory: ClientFactory, tmp_path: Path
) -> None:
    client = await local_scheduler_factory()
    body = {"jobScheduleDescriptions": [shell("exit 0"), shell(LONG), {"payload": "p"}]}
    response = await client.post("/api/v1/batches", json=body)
    assert response.status == 200, await response.text()
    created = await response.json()
    batch = created["name"]
    jobs = [job["name"] for job in created["jobStatuses"]]

    async def batch_statuses() -> list[str]:
        answer = await (await client.get(f"/api/v1/batches/{batch}")).json()
        return sorted(job["status"] for job in answer["jobStatuses"])

    async def short_ones_done() -> bool:
        return await batch_statuses() == ["Running", "Succeeded", "Succeeded"]

    await wait_until(short_ones_done, TIMEOUT_SECONDS)
    assert (await client.post(f"/api/v1/batches/{batch}/stop")).status == 200

    async def long_one_stopped() -> bool:
        return await batch_statuses() == ["Stopped", "Succeeded", "Succeeded"]

    await wait_until(long_one_stopped, TIMEOUT_SECONDS)
    assert (await (await client.get(f"/api/v1/batches/{batch}")).json())["status"] == "Completed"
    assert (await client.delete(f"/api/v1/batches/{batch}")).status == 200
    assert (await client.get(f"/api/v1/batches/{batch}")).status == 404
    for job in jobs:
        assert (await client.get(f"/api/v1/jobs/{job}")).status == 404
        assert not (tmp_path / "state" / "logs" / job).exists()
        assert not (tmp_path / "state" / "payloads" / job).exists()
    assert os.listdir(tmp_path / "state" / "payloads") == []
