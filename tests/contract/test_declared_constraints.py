"""swagger.json declares what the server enforces: every limit it declares on what a client sends
(bounds, lengths, patterns, item counts) is read from the committed file, and a value just
inside it is taken while one just outside is refused, naming the field, on both backends."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.conftest import ClientFactory, wait_for_status

ROOT = Path(__file__).parents[2]
SPEC = json.loads((ROOT / "swagger.json").read_text())
DEFINITIONS = SPEC["definitions"]
# What Swagger 2.0 can say about a value, and our extension for the keys of a map.
KEYWORDS = ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems")
KEY_PATTERN = "x-key-pattern"
REQUEST_BODIES = ("JobScheduleDescription", "BatchScheduleDescription")
# A job that ends at once on either backend.
RUN = {"command": ["sh", "-c", "exit 0"]}


def _reachable(name: str, seen: set[str]) -> set[str]:
    if name not in seen:
        seen.add(name)
        text = json.dumps(DEFINITIONS[name])
        for other in DEFINITIONS:
            if f'"#/definitions/{other}"' in text:
                _reachable(other, seen)
    return seen


def _walk(schema: dict[str, Any], where: str, found: dict[str, Any]) -> None:
    for keyword in (*KEYWORDS, KEY_PATTERN):
        if keyword in schema:
            found[f"{where}.{keyword}"] = schema[keyword]
    for name, child in schema.get("properties", {}).items():
        _walk(child, f"{where}.{name}", found)
    if isinstance(schema.get("items"), dict):
        _walk(schema["items"], f"{where}[]", found)
    if isinstance(schema.get("additionalProperties"), dict):
        _walk(schema["additionalProperties"], f"{where}{{}}", found)


def declared_body_constraints() -> dict[str, Any]:
    """Each constraint of the request bodies, by where swagger.json declares it:
    `Runtime.nodeType.maxLength`, `ResourceList{}.pattern`, `EnvVars.x-key-pattern`."""
    found: dict[str, Any] = {}
    names: set[str] = set()
    for body in REQUEST_BODIES:
        names |= _reachable(body, set())
    for name in sorted(names):
        _walk(DEFINITIONS[name], name, found)
    return found


def declared_query_constraints() -> dict[str, Any]:
    """Each constraint of the query parameters, by operation: `getJobLogs.tail.maximum`."""
    found: dict[str, Any] = {}
    for operations in SPEC["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    where = f"{operation['operationId']}.{parameter['name']}"
                    _walk(parameter, where, found)
    return found


Request = tuple[str, dict[str, Any]]


def job(**fields: Any) -> Request:
    return "/api/v1/jobs", {**RUN, **fields}


def batch_default(**fields: Any) -> Request:
    return "/api/v1/batches", {
        "defaultRadixJobComponentConfig": {**RUN, **fields},
        "jobScheduleDescriptions": [{}],
    }


def rules(*rule: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rule)}


def exit_codes(operator: str, *values: int) -> dict[str, Any]:
    return rules({"action": "FailJob", "onExitCodes": {"operator": operator, "values": values}})


# The largest payload limit a scheduler may be given, as the README says.
MAX_PAYLOAD_BYTES_LIMIT = 64 * 1024 * 1024


class Where(NamedTuple):
    """How to send a value at a declared place, and what the 422 names."""

    place: Callable[[Any], Request]
    field: str
    # Items for a list's bounds: the i-th item of a list of n.
    item: Callable[[int], Any] | None = None
    # Samples for a pattern: (matching, not matching).
    samples: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    # What a value past the limit gets, when not 422; and the words that name the field.
    outside_code: int = 422
    fragment: str | None = None
    # The settings the scheduler needs for the declared limit to be the one it applies.
    settings: tuple[tuple[str, str], ...] = ()


ENV_NAMES = (
    ("A", "_", "-", "my.env-name", "MY_ENV.NAME", "MyEnvName1", ".a", ".1", "a..b", "x" * 300),
    ("", "1A", ".", "..", "..a", "A B", "A=B", "Ä", "A\u0000", "a/b", "$A"),
)
QUANTITIES = (
    ("1", "0", "500m", "1.5", "1.", ".5", "+1", "256Mi", "1Ki", "2Ei", "1E", "1e3", "1E-3", "1k"),
    ("", "-1", "1.5.5", ".", "1 Gi", "1mi", "1KB", "1e", "Gi", "1Mii", "abc", "1e3Mi"),
)
NODE_TYPES = (("", "a", "gpu-v100", "a-1", "9"), ("-a", "a-", "A", "a_b", "a.b", " a"))

BODY_TABLE: dict[str, Where] = {
    "JobScheduleDescription.backoffLimit.minimum": Where(
        lambda v: job(backoffLimit=v), "backoffLimit"
    ),
    "JobScheduleDescription.backoffLimit.maximum": Where(
        lambda v: job(backoffLimit=v), "backoffLimit"
    ),
    "JobScheduleDescription.timeLimitSeconds.minimum": Where(
        lambda v: job(timeLimitSeconds=v), "timeLimitSeconds"
    ),
    "JobScheduleDescription.timeLimitSeconds.maximum": Where(
        lambda v: job(timeLimitSeconds=v), "timeLimitSeconds"
    ),
    # The declared limit is the largest a scheduler may be set to take (64 MiB); past it a
    # payload is too large (413), not malformed.
    "JobScheduleDescription.payload.maxLength": Where(
        lambda v: job(payload=v),
        "payload",
        outside_code=413,
        settings=(
            ("SCHEDULER_MAX_PAYLOAD_BYTES", str(MAX_PAYLOAD_BYTES_LIMIT)),
            ("SCHEDULER_IMAGE", "ghcr.io/equinor/job-scheduler:test"),
        ),
    ),
    "RadixJobComponentConfig.backoffLimit.minimum": Where(
        lambda v: batch_default(backoffLimit=v), "defaultRadixJobComponentConfig.backoffLimit"
    ),
    "RadixJobComponentConfig.backoffLimit.maximum": Where(
        lambda v: batch_default(backoffLimit=v), "defaultRadixJobComponentConfig.backoffLimit"
    ),
    "RadixJobComponentConfig.timeLimitSeconds.minimum": Where(
        lambda v: batch_default(timeLimitSeconds=v),
        "defaultRadixJobComponentConfig.timeLimitSeconds",
    ),
    "RadixJobComponentConfig.timeLimitSeconds.maximum": Where(
        lambda v: batch_default(timeLimitSeconds=v),
        "defaultRadixJobComponentConfig.timeLimitSeconds",
    ),
    "BatchScheduleDescription.jobScheduleDescriptions.minItems": Where(
        lambda v: ("/api/v1/batches", {"jobScheduleDescriptions": v}),
        "jobScheduleDescriptions",
        item=lambda i: {**RUN, "jobId": str(i)},
        # Radix's own words for an empty batch.
        fragment="empty job description list",
    ),
    "BatchScheduleDescription.jobScheduleDescriptions.maxItems": Where(
        lambda v: ("/api/v1/batches", {"jobScheduleDescriptions": v}),
        "jobScheduleDescriptions",
        item=lambda i: {**RUN, "jobId": str(i)},
    ),
    "EnvVars.x-key-pattern": Where(
        lambda v: job(variables={v: "value"}), "variables", samples=ENV_NAMES
    ),
    "ResourceList{}.pattern": Where(
        lambda v: job(resources={"limits": {"memory": v}, "requests": {"cpu": v}}),
        "resources.limits.memory",
        samples=QUANTITIES,
    ),
    "Runtime.nodeType.maxLength": Where(lambda v: job(runtime={"nodeType": v}), "runtime.nodeType"),
    "Runtime.nodeType.pattern": Where(
        lambda v: job(runtime={"nodeType": v}), "runtime.nodeType", samples=NODE_TYPES
    ),
    "FailurePolicy.rules.maxItems": Where(
        lambda v: job(failurePolicy=rules(*v)),
        "failurePolicy.rules",
        item=lambda i: {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [i + 1]}},
    ),
    "FailurePolicyRuleOnExitCodes.values.minItems": Where(
        lambda v: job(failurePolicy=exit_codes("In", *v)),
        "failurePolicy.rules.0.onExitCodes.values",
        item=lambda i: i + 1,
    ),
    "FailurePolicyRuleOnExitCodes.values.maxItems": Where(
        lambda v: job(failurePolicy=exit_codes("In", *v)),
        "failurePolicy.rules.0.onExitCodes.values",
        item=lambda i: i + 1,
    ),
    "FailurePolicyRuleOnExitCodes.values[].minimum": Where(
        lambda v: job(failurePolicy=exit_codes("NotIn", v)),
        "failurePolicy.rules.0.onExitCodes.values.0",
    ),
    "FailurePolicyRuleOnExitCodes.values[].maximum": Where(
        lambda v: job(failurePolicy=exit_codes("NotIn", v)),
        "failurePolicy.rules.0.onExitCodes.values.0",
    ),
}


def inside_and_outside(keyword: str, limit: Any, where: Where) -> tuple[list[Any], list[Any]]:
    """Values just inside the declared limit and just outside it."""
    if keyword == "minimum":
        return [limit], [limit - 1]
    if keyword == "maximum":
        return [limit], [limit + 1]
    if keyword == "maxLength":
        return ["a" * limit], ["a" * (limit + 1)]
    if keyword in ("minItems", "maxItems"):
        assert where.item is not None
        inside = [where.item(i) for i in range(limit)]
        outside = inside[:-1] if keyword == "minItems" else [*inside, where.item(limit)]
        return [inside], [outside]
    matching, other = where.samples
    return list(matching), list(other)


def test_every_constraint_declared_on_a_request_body_is_in_the_table() -> None:
    assert sorted(declared_body_constraints()) == sorted(BODY_TABLE)


@pytest.mark.parametrize("where", sorted(w for w in BODY_TABLE if w.endswith("pattern")))
def test_the_pattern_samples_are_what_the_declared_pattern_says(where: str) -> None:
    # The samples checked against the server below are inside and outside the declared pattern.
    pattern = re.compile(declared_body_constraints()[where])
    matching, other = BODY_TABLE[where].samples
    assert matching and other
    assert [s for s in matching if not pattern.search(s)] == []
    assert [s for s in other if pattern.search(s)] == []


async def _message(response: Any) -> str:
    body = await response.json()
    return str(body.get("message", ""))


@pytest.mark.parametrize("where", sorted(BODY_TABLE))
async def test_the_server_takes_a_value_inside_a_declared_limit_and_refuses_one_outside(
    start: ClientFactory, where: str
) -> None:
    row = BODY_TABLE[where]
    client = await start(**dict(row.settings))
    keyword = where.rsplit(".", 1)[1].removeprefix("x-key-")
    inside, outside = inside_and_outside(keyword, declared_body_constraints()[where], row)
    for value in inside:
        path, body = row.place(value)
        response = await client.post(path, json=body)
        assert response.status == 200, (value, await response.text())
    for value in outside:
        path, body = row.place(value)
        response = await client.post(path, json=body)
        assert response.status == row.outside_code, (value, await response.text())
        assert (row.fragment or row.field) in await _message(response), value


QUERY_TABLE = {
    f"{operation}.{name}.{keyword}": (operation, name)
    for operation in ("getJobLogs", "getBatchJobLogs")
    for name in ("tail", "attempt")
    for keyword in ("minimum", "maximum")
}


def test_every_constraint_declared_on_a_query_parameter_is_in_the_table() -> None:
    assert sorted(declared_query_constraints()) == sorted(QUERY_TABLE)


@pytest.mark.parametrize("where", sorted(QUERY_TABLE))
async def test_a_query_parameter_inside_its_declared_limit_is_taken_and_outside_is_422(
    start: ClientFactory, where: str
) -> None:
    client = await start()
    operation, name = QUERY_TABLE[where]
    keyword = where.rsplit(".", 1)[1]
    limit = declared_query_constraints()[where]
    created = await client.post("/api/v1/batches", json={"jobScheduleDescriptions": [RUN]})
    assert created.status == 200, await created.text()
    batch = await created.json()
    job_name = batch["jobStatuses"][0]["name"]
    url = {
        "getJobLogs": f"/api/v1/jobs/{job_name}/logs",
        "getBatchJobLogs": f"/api/v1/batches/{batch['name']}/jobs/{job_name}/logs",
    }[operation]
    outside = limit - 1 if keyword == "minimum" else limit + 1
    # The job may not have started yet (409), but the parameter itself is never the problem.
    response = await client.get(url, params={name: str(limit)})
    assert response.status != 422, await response.text()
    response = await client.get(url, params={name: str(outside)})
    assert response.status == 422, await response.text()
    assert name in await _message(response)


@pytest.mark.parametrize(
    ("operator", "values", "problem"),
    [
        ("In", [3, 1], "ascending"),
        ("NotIn", [1, 1], "unique"),
        ("In", [0, 1], "0 is not allowed with the In operator"),
    ],
)
async def test_exit_codes_kubernetes_would_refuse_are_422_naming_them_as_the_description_says(
    start: ClientFactory, operator: str, values: list[int], problem: str
) -> None:
    # Swagger 2.0 cannot say "ascending" (and `uniqueItems` would make some generated clients
    # use a set), so the description says it; the server holds to it on both backends.
    description = DEFINITIONS["FailurePolicyRuleOnExitCodes"]["properties"]["values"]
    assert (
        "unique, in ascending order, and without 0 for the In operator"
        in (description["description"])
    )
    client = await start()
    response = await client.post(
        "/api/v1/jobs", json=job(failurePolicy=exit_codes(operator, *values))[1]
    )
    assert response.status == 422, await response.text()
    message = await _message(response)
    assert "failurePolicy.rules.0.onExitCodes.values" in message and problem in message
    allowed = await client.post(
        "/api/v1/jobs", json=job(failurePolicy=exit_codes("NotIn", 0, 1, 255))[1]
    )
    assert allowed.status == 200, await allowed.text()


async def test_a_job_with_the_largest_declared_time_limit_runs_to_its_end(
    start: ClientFactory,
) -> None:
    # Beyond what a datetime holds: the local backend once lost such a job's supervisor.
    limit = declared_body_constraints()["JobScheduleDescription.timeLimitSeconds.maximum"]
    client = await start()
    response = await client.post("/api/v1/jobs", json=job(timeLimitSeconds=limit)[1])
    assert response.status == 200, await response.text()
    await wait_for_status(client, (await response.json())["name"], "Succeeded")
