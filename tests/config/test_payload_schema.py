"""A job's payload schema (radixconfig `payload.schema`): inline or a file beside the radixconfig,
checked and compiled at start; a bad one, or a schedule's payload that breaks it, stops the process
with one line naming the file and what is wrong, and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.__main__ import main
from scheduler.errors import ConfigError
from scheduler.radixconfig import JobDefinition, load_radixconfig, resolve_job

ORDER = {
    "title": "Order",
    "description": "What to compute",
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 0}}},
        }
    },
}


def write_config(directory: Path, payload: dict[str, Any], **job: Any) -> Path:
    document = {
        "apiVersion": "radix.equinor.com/v1",
        "kind": "RadixApplication",
        "metadata": {"name": "myapp"},
        "spec": {
            "environments": [{"name": "dev"}],
            "jobs": [
                {
                    "name": "compute",
                    "image": "busybox:1.36",
                    "schedulerPort": 8000,
                    "payload": payload,
                    **job,
                }
            ],
        },
    }
    path = directory / "radixconfig.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def resolved(config: Path) -> JobDefinition:
    return resolve_job(load_radixconfig(config), "compute", environment="dev", source=str(config))


def problem(config: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        resolved(config)
    message = str(caught.value)
    assert "\n" not in message, "one line"
    return message


def test_an_inline_schema_judges_payloads(tmp_path: Path) -> None:
    schema = resolved(write_config(tmp_path, {"path": "/args", "schema": ORDER})).payload_schema

    assert schema is not None and schema.document == ORDER
    assert list(schema.violations('{"items": [{"size": 3}]}')) == []
    (broken,) = schema.violations('{"items": [{"size": -1}]}')
    assert (broken.pointer, broken.rule, broken.value) == ("/items/0/size", "minimum", -1)


@pytest.mark.parametrize(
    "name, text",
    [
        ("order.json", json.dumps(ORDER)),
        ("order.yaml", yaml.safe_dump(ORDER)),
    ],
)
def test_a_schema_file_is_read_relative_to_the_radixconfig_as_json_or_yaml(
    tmp_path: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / name).write_text(text)
    config = write_config(tmp_path, {"path": "/args", "schema": f"schemas/{name}"})
    monkeypatch.chdir("/")  # not the working directory's

    schema = resolved(config).payload_schema

    assert schema is not None and schema.document == ORDER


def test_a_job_without_a_schema_has_none(tmp_path: Path) -> None:
    assert resolved(write_config(tmp_path, {"path": "/args"})).payload_schema is None


@pytest.mark.parametrize(
    "schema, what",
    [
        ({"type": "strng"}, "payload.schema: not a draft 2020-12 JSON Schema: /type:"),
        (
            {"properties": {"size": {"minimum": "zero"}}},
            "payload.schema: not a draft 2020-12 JSON Schema: /properties/size/minimum:",
        ),
        (
            {"$schema": "http://json-schema.org/draft-07/schema#"},
            "payload.schema: $schema is 'http://json-schema.org/draft-07/schema#'; "
            "only https://json-schema.org/draft/2020-12/schema is taken",
        ),
        ({"$ref": "#/$defs/missing"}, "payload.schema: cannot be compiled:"),
        ({"pattern": "[a-"}, 'payload.schema: cannot be compiled: /pattern: "[a-" is not a'),
    ],
)
def test_a_bad_inline_schema_names_the_radixconfig_the_field_and_what_is_wrong(
    tmp_path: Path, schema: dict[str, Any], what: str
) -> None:
    config = write_config(tmp_path, {"path": "/args", "schema": schema})

    assert problem(config).startswith(f"{config}: spec.jobs[0].{what}")


def test_a_remote_reference_is_refused_at_start_and_never_fetched(tmp_path: Path) -> None:
    schema = {"$ref": "https://schemas.example.com/order.json"}
    config = write_config(tmp_path, {"path": "/args", "schema": schema})

    message = problem(config)

    assert message.startswith(f"{config}: spec.jobs[0].payload.schema: cannot be compiled:")
    assert "Retrieval is disabled" in message


@pytest.mark.parametrize(
    "name, text, what",
    [
        ("order.json", '{"type": "object",}', "not valid JSON:"),
        ("order.yaml", "type: [object", "not valid YAML:"),
        ("order.yaml", "- a list", "must hold a JSON Schema object"),
        ("order.json", '{"type": "strng"}', "not a draft 2020-12 JSON Schema: /type:"),
    ],
)
def test_a_bad_schema_file_names_the_radixconfig_field_and_the_file(
    tmp_path: Path, name: str, text: str, what: str
) -> None:
    (tmp_path / name).write_text(text)
    config = write_config(tmp_path, {"path": "/args", "schema": name})

    assert problem(config).startswith(
        f"{config}: spec.jobs[0].payload.schema: {tmp_path / name}: {what}"
    )


def test_a_missing_schema_file_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"path": "/args", "schema": "nowhere.json"})

    assert problem(config) == (
        f"{config}: spec.jobs[0].payload.schema: {tmp_path / 'nowhere.json'}: "
        "cannot read the schema: No such file or directory"
    )


def test_a_schema_needs_a_payload_path(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"schema": ORDER})

    with pytest.raises(ConfigError, match=r"spec\.jobs\[0\]\.payload\.path: Field required"):
        resolved(config)


def test_a_schedule_payload_that_breaks_the_schema_is_named_with_the_rule(tmp_path: Path) -> None:
    schedules = [
        {"name": "fine", "cron": "0 * * * *", "payload": '{"items": []}'},
        {"name": "nightly", "cron": "0 3 * * *", "payload": '{"items": [{"size": -2}]}'},
    ]
    config = write_config(tmp_path, {"path": "/args", "schema": ORDER}, schedules=schedules)

    assert problem(config) == (
        f"{config}: spec.jobs[0].schedules[1].payload: does not satisfy payload.schema: "
        "/items/0/size: 'minimum': -2 is less than the minimum of 0"
    )


def test_a_schedule_without_a_payload_breaks_a_schema_as_a_post_would(tmp_path: Path) -> None:
    schedules = [{"name": "nightly", "cron": "0 3 * * *"}]
    config = write_config(tmp_path, {"path": "/args", "schema": ORDER}, schedules=schedules)

    assert "schedules[0].payload: does not satisfy payload.schema: (the payload): 'required'" in (
        problem(config)
    )


def test_an_environment_schedule_is_checked_too(tmp_path: Path) -> None:
    environment = {
        "environment": "dev",
        "schedules": [{"name": "nightly", "cron": "0 3 * * *", "payload": "not json"}],
    }
    config = write_config(
        tmp_path, {"path": "/args", "schema": ORDER}, environmentConfig=[environment]
    )

    assert "spec.jobs[0].environmentConfig[0].schedules[0].payload: does not satisfy " in (
        problem(config)
    )
    assert "'json': not JSON" in problem(config)


def test_main_exits_2_with_one_line_for_a_bad_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, {"path": "/args", "schema": {"type": "strng"}})
    environ = {"RADIX_CONFIG_FILE": str(config), "RADIX_COMPONENT": "compute"}

    assert main(["--environment", "dev"], environ) == 2

    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"job-scheduler: {config}: spec.jobs[0].payload.schema: not a draft")


def test_the_process_stops_with_exit_2_and_one_line_naming_the_schema_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "order.json").write_text('{"properties": {"size": {"type": 3}}}')
    config = write_config(tmp_path, {"path": "/args", "schema": "order.json"})
    command = [sys.executable, "-m", "scheduler", "--config", str(config), "--job", "compute"]

    result = subprocess.run(
        [*command, "--environment", "dev"], capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"job-scheduler: {config}: spec.jobs[0].payload.schema: {tmp_path / 'order.json'}: "
        "not a draft 2020-12 JSON Schema: /properties/size/type:"
    )
