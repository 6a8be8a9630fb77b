"""The radixconfig YAML (RadixApplication) models, its loader, and the job definition it gives.

Errors name the file and the field (pydantic's path) so an operator can fix the config in one go.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from scheduler.backends.base import NodeSpec, PortSpec, RuntimeSpec
from scheduler.cron import parse_cron, parse_time_zone
from scheduler.errors import ConfigError
from scheduler.models.jobs import WaitingTimeout
from scheduler.payload_schema import PayloadSchema, load_payload_schema

DEFAULT_TIME_LIMIT_SECONDS = 43200
DEFAULT_BACKOFF_LIMIT = 0
IMAGE_TAG_PLACEHOLDER = "{imageTagName}"
# A job name is used as a Service name (DNS-1035 label) and, with the 24 characters of
# "-<yyyymmddHHMMSS>-<8 random>" appended, as a Job name that must fit the 63-character label
# value Kubernetes puts on the job's pods.
MAX_JOB_NAME_LENGTH = 39
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def _scalar_to_str(value: Any) -> Any:
    """YAML turns `8080`, `true` and `1.5` into numbers and booleans; env vars and quantities are
    strings, spelled the way the author wrote them (booleans in YAML's lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


YamlStr = Annotated[str, BeforeValidator(_scalar_to_str)]


class _Lenient(BaseModel):
    # Radix allows many keys we do not use (src, dockerfileName, secrets, identity, ...).
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Port(_Lenient):
    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=15)]
    port: Annotated[int, Field(ge=1, le=65535)]


class Resources(_Lenient):
    requests: dict[str, YamlStr] = Field(default_factory=dict)
    limits: dict[str, YamlStr] = Field(default_factory=dict)


class Payload(_Lenient):
    path: Annotated[str, Field(min_length=1, pattern=r"^/")]
    # Ours: a JSON Schema (draft 2020-12) every payload must satisfy, inline or a file's path
    # relative to the radixconfig (scheduler.payload_schema).
    declared_schema: dict[str, Any] | str | None = Field(default=None, alias="schema")


class Notifications(_Lenient):
    webhook: Annotated[str, Field(pattern=r"^https?://[^\s/]+")] | None = None


class Node(_Lenient):
    gpu: YamlStr | None = None
    gpu_count: YamlStr | None = Field(default=None, alias="gpuCount")


class Runtime(_Lenient):
    architecture: Literal["amd64", "arm64"] | None = None
    node_type: (
        Annotated[str, Field(max_length=120, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] | None
    ) = Field(default=None, alias="nodeType")


def _check_cron(expression: str) -> str:
    parse_cron(expression)  # its ValueError names what is wrong; pydantic adds the field
    return expression


def _check_time_zone(name: str) -> str:
    parse_time_zone(name)
    return name


MAX_SCHEDULES = 20


class Schedule(_Lenient):
    """A cron schedule of the job: each tick runs the job once, as an ordinary job. Kubernetes
    CronJob's field names (`schedule`, `timezone`, `concurrencyPolicy`) are accepted too."""

    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]
    cron: Annotated[str, AfterValidator(_check_cron)] = Field(
        validation_alias=AliasChoices("cron", "schedule")
    )
    time_zone: Annotated[str, AfterValidator(_check_time_zone)] = Field(
        default="UTC", validation_alias=AliasChoices("timeZone", "timezone")
    )
    concurrency: Literal["Allow", "Forbid", "Replace"] = Field(
        default="Allow", validation_alias=AliasChoices("concurrency", "concurrencyPolicy")
    )
    variables: dict[str, YamlStr] | None = None
    payload: str | None = None


def _unique_names(schedules: list[Schedule]) -> list[Schedule]:
    seen: dict[str, int] = {}
    for index, schedule in enumerate(schedules):
        if schedule.name in seen:
            raise ValueError(
                f"schedules[{index}].name: {schedule.name!r} is the name of "
                f"schedules[{seen[schedule.name]}] too; names are unique in a job"
            )
        seen[schedule.name] = index
    return schedules


Schedules = Annotated[
    list[Schedule], Field(max_length=MAX_SCHEDULES), AfterValidator(_unique_names)
]


JobPhase = Literal["Waiting", "Active", "Running", "Succeeded", "Failed", "Stopped"]


class BatchStatusRule(_Lenient):
    """When `condition` (All or Any) of the batch's jobs are (`In`) or are not (`NotIn`) in
    `jobStatuses`, the batch's status is `batchStatus`. The first rule that matches wins."""

    condition: Literal["All", "Any"]
    operator: Literal["In", "NotIn"]
    job_statuses: Annotated[list[JobPhase], Field(min_length=1)] = Field(alias="jobStatuses")
    batch_status: Literal[
        "Waiting", "Active", "Running", "Succeeded", "Failed", "Stopped", "Completed"
    ] = Field(alias="batchStatus")


class EnvironmentConfig(_Lenient):
    environment: str
    image_tag_name: str | None = Field(default=None, alias="imageTagName")
    variables: dict[str, YamlStr] | None = None
    resources: Resources | None = None
    time_limit_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, alias="timeLimitSeconds"
    )
    backoff_limit: Annotated[int, Field(ge=0)] | None = Field(default=None, alias="backoffLimit")
    waiting_timeout_seconds: WaitingTimeout | None = Field(
        default=None, alias="waitingTimeoutSeconds"
    )
    command: list[YamlStr] | None = None
    args: list[YamlStr] | None = None
    run_as_user: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="runAsUser")
    notifications: Notifications | None = None
    node: Node | None = None
    runtime: Runtime | None = None
    batch_status_rules: list[BatchStatusRule] | None = Field(default=None, alias="batchStatusRules")
    # Replaces the job's list whole (`schedules: []` turns them off in this environment).
    schedules: Schedules | None = None


class RadixJob(_Lenient):
    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=MAX_JOB_NAME_LENGTH)]
    src: str | None = None
    image: str | None = None
    scheduler_port: Annotated[int, Field(ge=1, le=65535)] = Field(alias="schedulerPort")
    payload: Payload | None = None
    ports: list[Port] = Field(default_factory=list)
    resources: Resources | None = None
    variables: dict[str, YamlStr] = Field(default_factory=dict)
    command: list[YamlStr] | None = None
    args: list[YamlStr] | None = None
    time_limit_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, alias="timeLimitSeconds"
    )
    backoff_limit: Annotated[int, Field(ge=0)] | None = Field(default=None, alias="backoffLimit")
    # Our addition: a job not started this long after it could is failed (None: it waits on).
    waiting_timeout_seconds: WaitingTimeout | None = Field(
        default=None, alias="waitingTimeoutSeconds"
    )
    run_as_user: Annotated[int, Field(ge=1)] | None = Field(default=None, alias="runAsUser")
    notifications: Notifications | None = None
    node: Node | None = None
    runtime: Runtime | None = None
    batch_status_rules: list[BatchStatusRule] = Field(
        default_factory=list, alias="batchStatusRules"
    )
    environment_config: list[EnvironmentConfig] = Field(
        default_factory=list, alias="environmentConfig"
    )
    schedules: Schedules = Field(default_factory=list)


class Environment(_Lenient):
    name: str


class Metadata(_Lenient):
    name: Annotated[str, Field(pattern=DNS_LABEL, max_length=63)]


class Spec(_Lenient):
    environments: list[Environment] = Field(default_factory=list)
    jobs: list[RadixJob] = Field(default_factory=list)


class RadixApplication(_Lenient):
    api_version: Literal["radix.equinor.com/v1"] = Field(alias="apiVersion")
    kind: Literal["RadixApplication"]
    metadata: Metadata
    spec: Spec


class JobDefinition(BaseModel):
    """One job as it runs in one environment: the radixconfig's values with that environment's
    `environmentConfig` applied. This is what the scheduler serves."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    app: str
    environment: str
    name: str
    image: str
    scheduler_port: int
    payload_path: str | None
    ports: tuple[PortSpec, ...]
    requests: dict[str, str]
    limits: dict[str, str]
    variables: dict[str, str]
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    time_limit_seconds: int
    backoff_limit: int
    run_as_user: int | None
    webhook_url: str | None = None
    waiting_timeout_seconds: int | None = None
    node: NodeSpec | None = None
    runtime: RuntimeSpec | None = None
    batch_status_rules: tuple[BatchStatusRule, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    payload_schema: PayloadSchema | None = None


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def describe_validation_error(source: str, error: ValidationError) -> str:
    """One line per problem: `<source>: <field path>: <what is wrong>`."""
    lines = [f"{source}: {_location(e['loc'])}: {e['msg']}" for e in error.errors()]
    return "\n".join(lines)


def parse_radixconfig(text: str, source: str) -> RadixApplication:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: (document): expected a RadixApplication mapping")
    try:
        return RadixApplication.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(source, exc)) from exc


def load_radixconfig(path: Path) -> RadixApplication:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the radixconfig: {exc.strerror}") from exc
    return parse_radixconfig(text, str(path))


def _merge(base: dict[str, str], override: dict[str, str] | None) -> dict[str, str]:
    return {**base, **(override or {})}


def resolve_job(
    application: RadixApplication, job_name: str, *, environment: str, source: str
) -> JobDefinition:
    """Pick `job_name` and apply `environment`'s overrides; errors name the offending field."""
    jobs = {job.name: (index, job) for index, job in enumerate(application.spec.jobs)}
    if job_name not in jobs:
        known = ", ".join(sorted(jobs)) or "none"
        raise ConfigError(f"{source}: spec.jobs: no job named {job_name!r} (jobs: {known})")
    environments = [env.name for env in application.spec.environments]
    if environment not in environments:
        known = ", ".join(environments) or "none"
        raise ConfigError(
            f"{source}: spec.environments: no environment named {environment!r} "
            f"(environments: {known})"
        )
    index, job = jobs[job_name]
    where = f"{source}: spec.jobs[{index}]"
    if not job.image:
        if job.src:
            raise ConfigError(
                f"{where}.src: this scheduler runs pre-built images; set `image` instead of `src`"
            )
        raise ConfigError(f"{where}.image: Field required")
    env = next((e for e in job.environment_config if e.environment == environment), None)
    env = env or EnvironmentConfig(environment=environment)

    image = job.image
    if IMAGE_TAG_PLACEHOLDER in image:
        if not env.image_tag_name:
            raise ConfigError(
                f"{where}.environmentConfig: image {image!r} needs an imageTagName "
                f"for environment {environment!r}"
            )
        image = image.replace(IMAGE_TAG_PLACEHOLDER, env.image_tag_name)
    elif env.image_tag_name:
        image = replace_image_tag(image, env.image_tag_name)

    base_resources = job.resources or Resources()
    env_resources = env.resources or Resources()
    command = env.command if env.command is not None else job.command
    args = env.args if env.args is not None else job.args
    payload_schema = _payload_schema(job, where, Path(source).parent)
    return JobDefinition(
        app=application.metadata.name,
        environment=environment,
        name=job.name,
        image=image,
        scheduler_port=job.scheduler_port,
        payload_path=job.payload.path if job.payload else None,
        ports=tuple(PortSpec(p.name, p.port) for p in job.ports),
        requests=_merge(base_resources.requests, env_resources.requests),
        limits=_merge(base_resources.limits, env_resources.limits),
        variables=_merge(job.variables, env.variables),
        command=tuple(command) if command is not None else None,
        args=tuple(args) if args is not None else None,
        time_limit_seconds=env.time_limit_seconds
        or job.time_limit_seconds
        or DEFAULT_TIME_LIMIT_SECONDS,
        backoff_limit=_first_set(env.backoff_limit, job.backoff_limit, DEFAULT_BACKOFF_LIMIT),
        waiting_timeout_seconds=env.waiting_timeout_seconds or job.waiting_timeout_seconds,
        run_as_user=env.run_as_user or job.run_as_user,
        webhook_url=_webhook(job.notifications, env.notifications),
        node=_node(job.node, env.node),
        runtime=_runtime(job.runtime, env.runtime),
        batch_status_rules=tuple(
            env.batch_status_rules if env.batch_status_rules is not None else job.batch_status_rules
        ),
        schedules=_schedules(job, env, where, payload_schema),
        payload_schema=payload_schema,
    )


def _payload_schema(job: RadixJob, where: str, base: Path) -> PayloadSchema | None:
    if job.payload is None or job.payload.declared_schema is None:
        return None
    return load_payload_schema(
        job.payload.declared_schema, base=base, where=f"{where}.payload.schema"
    )


def _schedules(
    job: RadixJob, env: EnvironmentConfig, where: str, payload_schema: PayloadSchema | None
) -> tuple[Schedule, ...]:
    """The environment's list, when it has one, replaces the job's; a payload needs the job's
    payload.path, and satisfies its payload.schema, as a POST's does."""
    schedules, field = job.schedules, f"{where}.schedules"
    if env.schedules is not None:
        index = next(i for i, e in enumerate(job.environment_config) if e is env)
        schedules, field = env.schedules, f"{where}.environmentConfig[{index}].schedules"
    for index, schedule in enumerate(schedules):
        if schedule.payload is not None and job.payload is None:
            raise ConfigError(
                f"{field}[{index}].payload: job {job.name} has no payload.path, "
                "so it cannot take a payload"
            )
        if payload_schema is not None:
            _check_schedule_payload(payload_schema, schedule, f"{field}[{index}].payload")
    return tuple(schedules)


def _check_schedule_payload(schema: PayloadSchema, schedule: Schedule, field: str) -> None:
    problems = list(schema.violations(schedule.payload))
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"{field}: does not satisfy payload.schema: "
            f"{first.pointer or '(the payload)'}: {first.rule!r}: {first.message}{more}"
        )


def _webhook(job: Notifications | None, env: Notifications | None) -> str | None:
    return (env.webhook if env else None) or (job.webhook if job else None)


def _node(job: Node | None, env: Node | None) -> NodeSpec | None:
    """The environment's values win field by field, as radix-operator merges them."""
    gpu = (env.gpu if env else None) or (job.gpu if job else None)
    count = (env.gpu_count if env else None) or (job.gpu_count if job else None)
    return NodeSpec(gpu=gpu, gpu_count=count) if gpu or count else None


def _runtime(job: Runtime | None, env: Runtime | None) -> RuntimeSpec | None:
    architecture = (env.architecture if env else None) or (job.architecture if job else None)
    node_type = (env.node_type if env else None) or (job.node_type if job else None)
    if architecture or node_type:
        return RuntimeSpec(architecture=architecture, node_type=node_type)
    return None


def _first_set(*values: int | None) -> int:
    return next(v for v in values if v is not None)


_DIGEST = re.compile(r"@sha256:[0-9a-f]+$")


def replace_image_tag(image: str, tag: str) -> str:
    """`registry:5000/app:old` -> `registry:5000/app:<tag>`; a port in the registry is not a tag."""
    image = _DIGEST.sub("", image)
    last_slash = image.rfind("/")
    colon = image.rfind(":")
    repository = image[:colon] if colon > last_slash else image
    return f"{repository}:{tag}"
