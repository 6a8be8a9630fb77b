"""The radixconfig loader: environment overrides, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.errors import ConfigError
from scheduler.radixconfig import (
    load_radixconfig,
    parse_radixconfig,
    replace_image_tag,
    resolve_job,
)

EXAMPLE = Path(__file__).parents[2] / "config" / "radixconfig.yaml"

BASE = """
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata: {name: myapp}
spec:
  environments: [{name: dev}, {name: prod}]
  jobs:
%s
"""


def config(jobs: str) -> str:
    return BASE % "\n".join("    " + line for line in jobs.strip().splitlines())


def test_the_shipped_example_resolves_for_every_job_and_environment() -> None:
    app = load_radixconfig(EXAMPLE)
    for job in ("compute", "etl"):
        for env in ("dev", "prod"):
            assert resolve_job(app, job, environment=env, source="x").name == job


def test_environment_config_overrides_and_combines_with_the_job_values() -> None:
    app = load_radixconfig(EXAMPLE)
    dev = resolve_job(app, "compute", environment="dev", source="x")
    prod = resolve_job(app, "compute", environment="prod", source="x")
    assert dev.variables == {"LOG_FORMAT": "json"}
    assert prod.variables == {"LOG_FORMAT": "text"}
    assert prod.limits == {"memory": "256Mi"} and prod.requests == {"cpu": "50m", "memory": "64Mi"}
    assert (dev.backoff_limit, prod.backoff_limit) == (0, 2)
    assert dev.time_limit_seconds == 3600
    assert dev.payload_path == "/compute/args"
    assert [(p.name, p.port) for p in dev.ports] == [("http", 3000)]


def test_image_tag_placeholder_takes_the_environment_tag() -> None:
    app = load_radixconfig(EXAMPLE)
    assert (
        resolve_job(app, "etl", environment="prod", source="x").image
        == "registry.example.com/etl:1.4.2"
    )


def test_defaults_are_radix_defaults() -> None:
    app = parse_radixconfig(
        config("- {name: etl, image: 'busybox:1.36', schedulerPort: 9000}"), "f"
    )
    job = resolve_job(app, "etl", environment="dev", source="f")
    assert job.time_limit_seconds == 43200
    assert job.backoff_limit == 0
    assert job.payload_path is None
    assert job.command is None


def test_yaml_numbers_and_booleans_become_the_strings_the_author_wrote() -> None:
    text = config("""
- name: etl
  image: busybox
  schedulerPort: 9000
  variables: {PORT: 8080, DEBUG: true, RATIO: 1.5}
  resources: {requests: {cpu: 1}}
""")
    job = resolve_job(parse_radixconfig(text, "f"), "etl", environment="dev", source="f")
    assert job.variables == {"PORT": "8080", "DEBUG": "true", "RATIO": "1.5"}
    assert job.requests == {"cpu": "1"}


def test_unknown_keys_that_radix_allows_are_ignored() -> None:
    text = config("""
- name: etl
  image: busybox
  schedulerPort: 9000
  dockerfileName: Dockerfile
  notifications: {webhook: "http://api:8080"}
  identity: {azure: {clientId: abc}}
""")
    assert (
        resolve_job(parse_radixconfig(text, "f"), "etl", environment="dev", source="f").name
        == "etl"
    )


@pytest.mark.parametrize(
    ("jobs", "job", "env", "expected"),
    [
        (
            "- {name: etl, image: busybox}",
            "etl",
            "dev",
            "f: spec.jobs[0].schedulerPort: Field required",
        ),
        ("- {name: etl, src: etl, schedulerPort: 9000}", "etl", "dev", "runs pre-built images"),
        (
            "- {name: etl, image: busybox, schedulerPort: 9000}",
            "compute",
            "dev",
            "no job named 'compute'",
        ),
        (
            "- {name: etl, image: busybox, schedulerPort: 9000}",
            "etl",
            "qa",
            "no environment named 'qa'",
        ),
        (
            "- {name: etl, image: 'x:{imageTagName}', schedulerPort: 9000}",
            "etl",
            "dev",
            "needs an imageTagName",
        ),
        (
            "- {name: etl, image: busybox, schedulerPort: 0}",
            "etl",
            "dev",
            "spec.jobs[0].schedulerPort: Input should be greater than or equal to 1",
        ),
        (
            "- {name: Etl_1, image: busybox, schedulerPort: 9000}",
            "Etl_1",
            "dev",
            "spec.jobs[0].name: String should match pattern",
        ),
        (
            "- {name: etl, image: busybox, schedulerPort: 9000, payload: {path: ''}}",
            "etl",
            "dev",
            "spec.jobs[0].payload.path",
        ),
    ],
)
def test_a_bad_config_is_one_clear_line_naming_file_and_field(
    jobs: str, job: str, env: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_job(parse_radixconfig(config(jobs), "f"), job, environment=env, source="f")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("f")


def test_a_file_that_is_not_a_radix_application_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^f: kind: Input should be 'RadixApplication'"):
        parse_radixconfig(config("[]").replace("RadixApplication", "RadixDeployment"), "f")


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_radixconfig(tmp_path / "nope.yaml")


def test_broken_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_radixconfig("spec: [unclosed", "f")
    assert "\n" not in str(caught.value) and "not valid YAML" in str(caught.value)


@pytest.mark.parametrize(
    ("image", "tag", "expected"),
    [
        ("busybox", "1.36", "busybox:1.36"),
        ("busybox:1.35", "1.36", "busybox:1.36"),
        ("registry:5000/team/app", "v2", "registry:5000/team/app:v2"),
        ("registry:5000/team/app:v1", "v2", "registry:5000/team/app:v2"),
        ("app@sha256:abc123", "v2", "app:v2"),
    ],
)
def test_replacing_an_image_tag_keeps_registry_ports(image: str, tag: str, expected: str) -> None:
    assert replace_image_tag(image, tag) == expected
