"""Runtime settings from flags and environment variables (flags win, then the variables, then
the defaults), resolved against the radixconfig. Each setting is one field of `RawSettings`:
its type, bounds and default, and the variable and the flag it is given by. `environ` is
injectable so tests never touch `os.environ`."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, BeforeValidator, Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from scheduler.errors import ConfigError
from scheduler.models import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_BYTES_LIMIT,
    SECRET_CAPACITY_BYTES,
)
from scheduler.radixconfig import JobDefinition, load_radixconfig, resolve_job

SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
# A batch carries up to 500 payloads of 1 MiB each.
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
# A body holding one payload of the largest size: the payload JSON-escaped (a quote or a
# backslash takes two bytes) and the rest of the request.
_BODY_PER_PAYLOAD_BYTE = 2
_BODY_BESIDE_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_BODY_BUDGET_BYTES = 24 * 1024 * 1024
DEFAULT_CREATE_GRACE_SECONDS = 30.0
DEFAULT_LOG_LIMIT_BYTES = 10 * 1024 * 1024
# What each job's record keeps on Kubernetes: the tail of each attempt's log, and the most it
# holds in all (compressed), in a ConfigMap, which holds 1 MiB of data at most.
DEFAULT_ATTEMPT_LOG_BYTES = 256 * 1024
DEFAULT_ATTEMPT_RECORD_BYTES = 900 * 1024
MAX_ATTEMPT_RECORD_BYTES = 960 * 1024
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
DEFAULT_EVENTS_HEARTBEAT_SECONDS = 15.0
# `/events`: how many recent events a returning client can catch up on, and how many one slow
# client may have queued before it is told to start over.
DEFAULT_RING_SIZE = 1000
DEFAULT_QUEUE_SIZE = 256
# `?wait=` on the GET of a job or a batch: the longest wait a request may ask for.
DEFAULT_MAX_WAIT_SECONDS = 300
SERVICE_ACCOUNT_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# Where the scheduler listens unless told: in a pod its Service and probes reach it by the pod's
# address; anywhere else only this machine does, since a request may carry its own command.
POD_HOST = "0.0.0.0"
LOCAL_HOST = "127.0.0.1"
# An API token shorter than this is too easily guessed.
MIN_API_TOKEN_LENGTH = 16


def _setting(flag: str | None, env: str, default: Any = ...) -> Any:
    """A field given by `flag` or else by the variable `env`. A secret has no flag: a flag
    would show it in `ps`. The variable comes first so that a missing setting is named by it."""
    return Field(default, validation_alias=AliasChoices(env, flag) if flag else env)


def _host_names(value: object) -> object:
    """`" A.example., ,b"` -> `("a.example", "b")`: names as a Host header is compared."""
    if not isinstance(value, str):
        return value
    names = (name.strip().lower().rstrip(".") for name in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def _first_path(value: object) -> object:
    # KUBECONFIG may list several files; the first one is the one we read.
    return value.split(":")[0] if isinstance(value, str) else value


Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
NonEmpty = Annotated[str, Field(min_length=1)]


class GivenSettings(BaseModel, frozen=True, extra="forbid", validate_by_name=True):
    """The settings the process uses as the operator gave them, or their defaults (`Settings`
    takes them over by field name)."""

    config_file: Path = _setting("--config", "RADIX_CONFIG_FILE")
    # Host names answered besides the scheduler's own (loopback, IP literals, its Service).
    allowed_hosts: Annotated[tuple[str, ...], BeforeValidator(_host_names)] = _setting(
        "--allowed-hosts", "SCHEDULER_ALLOWED_HOSTS", ()
    )
    history_limit: Positive = _setting(
        "--history-limit", "RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT", 10
    )
    log_level: Annotated[LogLevel, BeforeValidator(str.upper)] = _setting(
        "--log-level", "LOG_LEVEL", "INFO"
    )
    shutdown_timeout_seconds: Seconds = _setting(
        "--shutdown-timeout", "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS", 25.0
    )
    max_request_bytes: Annotated[int, Field(ge=1024 * 1024)] = _setting(
        "--max-request-bytes", "SCHEDULER_MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES
    )
    # The largest payload of one job, in bytes of UTF-8; above one Secret's 1 MiB, Kubernetes
    # jobs get theirs in several Secrets, put together by an init container of `image`.
    max_payload_bytes: Annotated[int, Field(ge=1, le=MAX_PAYLOAD_BYTES_LIMIT)] = _setting(
        "--max-payload-bytes", "SCHEDULER_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES
    )
    # The request bodies above 256 KiB held at once (with their payloads, three to four times as
    # much memory); a larger one waits until it is alone.
    body_budget_bytes: Annotated[int, Field(ge=1024 * 1024)] = _setting(
        "--body-budget-bytes", "SCHEDULER_BODY_BUDGET_BYTES", DEFAULT_BODY_BUDGET_BYTES
    )
    # The scheduler's own image (the chart sets it): what assembles a payload above 1 MiB.
    image: str | None = _setting("--image", "SCHEDULER_IMAGE", None)
    # How long a create may take before a restarted scheduler (or another replica) removes what
    # a crashed one left half-made.
    create_grace_seconds: Seconds = _setting(
        "--create-grace", "SCHEDULER_CREATE_GRACE_SECONDS", DEFAULT_CREATE_GRACE_SECONDS
    )
    webhook_attempts: Annotated[int, Field(ge=1, le=100)] = _setting(
        "--webhook-attempts", "SCHEDULER_WEBHOOK_ATTEMPTS", 5
    )
    webhook_timeout_seconds: Seconds = _setting(
        "--webhook-timeout", "SCHEDULER_WEBHOOK_TIMEOUT_SECONDS", 10.0
    )
    webhook_queue_size: Positive = _setting(
        "--webhook-queue-size", "SCHEDULER_WEBHOOK_QUEUE_SIZE", 10_000
    )
    # The local backend's bound on each log.
    log_limit_bytes: Annotated[int, Field(ge=4096)] = _setting(
        "--log-limit-bytes", "SCHEDULER_LOG_LIMIT_BYTES", DEFAULT_LOG_LIMIT_BYTES
    )
    # Kubernetes: what each job's record keeps of its attempts once their pods are gone.
    keep_attempts: bool = _setting("--keep-attempts", "SCHEDULER_KEEP_ATTEMPTS", True)
    attempt_log_bytes: Annotated[int, Field(ge=1024)] = _setting(
        "--attempt-log-bytes", "SCHEDULER_ATTEMPT_LOG_BYTES", DEFAULT_ATTEMPT_LOG_BYTES
    )
    attempt_record_bytes: Annotated[int, Field(ge=64 * 1024, le=MAX_ATTEMPT_RECORD_BYTES)] = (
        _setting(
            "--attempt-record-bytes", "SCHEDULER_ATTEMPT_RECORD_BYTES", DEFAULT_ATTEMPT_RECORD_BYTES
        )
    )
    # How often what running attempts use is measured (None: each backend's own default, 15 s
    # of the metrics API on Kubernetes, 1 s of /proc on the local backend).
    usage_interval_seconds: Annotated[float, Field(ge=0.01)] | None = _setting(
        "--usage-interval", "SCHEDULER_USAGE_INTERVAL_SECONDS", None
    )
    # How long a POST's Idempotency-Key is honoured: a repeat within it gets the first's job.
    idempotency_ttl_seconds: Seconds = _setting(
        "--idempotency-ttl", "SCHEDULER_IDEMPOTENCY_TTL_SECONDS", DEFAULT_IDEMPOTENCY_TTL_SECONDS
    )
    # GET /api/v1/events: events kept for clients that reconnect, events each client may fall
    # behind before it is dropped, and the idle time after which a comment keeps it open.
    events_ring_size: Positive = _setting(
        "--events-ring-size", "SCHEDULER_EVENTS_RING_SIZE", DEFAULT_RING_SIZE
    )
    events_queue_size: Positive = _setting(
        "--events-queue-size", "SCHEDULER_EVENTS_QUEUE_SIZE", DEFAULT_QUEUE_SIZE
    )
    events_heartbeat_seconds: Seconds = _setting(
        "--events-heartbeat", "SCHEDULER_EVENTS_HEARTBEAT_SECONDS", DEFAULT_EVENTS_HEARTBEAT_SECONDS
    )
    # 0: every GET answers at once (a `wait` above 0 is 422).
    max_wait_seconds: Annotated[int, Field(ge=0)] = _setting(
        "--max-wait", "SCHEDULER_MAX_WAIT_SECONDS", DEFAULT_MAX_WAIT_SECONDS
    )


class RawSettings(GivenSettings):
    """All the operator gave; `load_settings` resolves the rest against the radixconfig and the
    machine it runs on."""

    job: NonEmpty = _setting("--job", "RADIX_COMPONENT")
    environment: NonEmpty = _setting("--environment", "RADIX_ENVIRONMENT")
    app: str | None = _setting("--app", "RADIX_APP", None)
    namespace: str | None = _setting("--namespace", "SCHEDULER_NAMESPACE", None)
    port: Annotated[int, Field(ge=1, le=65535)] | None = _setting("--port", "SCHEDULER_PORT", None)
    host: str | None = _setting("--host", "SCHEDULER_HOST", None)
    kubeconfig: Annotated[Path | None, BeforeValidator(_first_path)] = _setting(
        "--kubeconfig", "KUBECONFIG", None
    )
    api_token_file: Path | None = _setting("--api-token-file", "SCHEDULER_API_TOKEN_FILE", None)
    api_token: SecretStr | None = _setting(None, "SCHEDULER_API_TOKEN", None)
    webhook_secret_file: Path | None = _setting(
        "--webhook-secret-file", "SCHEDULER_WEBHOOK_SECRET_FILE", None
    )
    webhook_secret: SecretStr | None = _setting(None, "SCHEDULER_WEBHOOK_SECRET", None)
    backend: Literal["auto", "kubernetes", "local"] = _setting(
        "--backend", "SCHEDULER_BACKEND", "auto"
    )
    state_dir: Path | None = _setting("--state-dir", "SCHEDULER_STATE_DIR", None)
    max_parallel: Positive | None = _setting("--max-parallel", "SCHEDULER_MAX_PARALLEL", None)


class Settings(GivenSettings):
    """Everything the process needs, with every default resolved."""

    definition: JobDefinition
    namespace: str
    host: str
    port: int
    # With a token every request but the probes and the console's files needs
    # `Authorization: Bearer <token>`; with a secret webhook bodies are signed (HMAC-SHA256).
    api_token: SecretStr | None
    webhook_secret: SecretStr | None
    # Where jobs run, and why that one (the first log line says it); the kubeconfig to read
    # (None: the pod's service account, or the local backend).
    backend: Literal["kubernetes", "local"]
    backend_reason: str
    kubeconfig: Path | None
    # The local backend's database, payloads and logs (None on Kubernetes); its parallelism.
    state_dir: Path | None
    max_parallel: int


def _names(alias: object) -> tuple[str, str | None]:
    """A setting's variable and its flag (None: a secret)."""
    env, *flag = alias.choices if isinstance(alias, AliasChoices) else [alias]
    return str(env), str(flag[0]) if flag else None


# Each setting's variable and flag, by field name.
_NAMES = {name: _names(field.validation_alias) for name, field in RawSettings.model_fields.items()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="job-scheduler",
        description="Serve the Radix job-scheduler API for one job in one environment.",
        epilog="Flags win over environment variables. SCHEDULER_API_TOKEN and "
        "SCHEDULER_WEBHOOK_SECRET come from the environment only (a flag shows in `ps`).",
        # No prefixes: `--api-token <secret>` must not be taken for `--api-token-file`.
        allow_abbrev=False,
    )
    # The radixconfig and the job in it first, then the rest as declared.
    for name, field in sorted(
        RawSettings.model_fields.items(), key=lambda item: not item[1].is_required()
    ):
        env, flag = _NAMES[name]
        if flag is not None:
            parser.add_argument(flag, dest=name, help=_help(env, field))
    return parser


def _help(env: str, field: FieldInfo) -> str:
    if field.is_required():
        return f"{env}, required"
    return env if field.default in (None, ()) else f"{env}, default {field.default}"


def _read(argv: Sequence[str], environ: Mapping[str, str]) -> RawSettings:
    """Each setting from its flag, else its variable; a mistake names the one it came from."""
    flags = vars(_parser().parse_args(list(argv)))
    given: dict[str, str] = {}
    for name, (env, flag) in _NAMES.items():
        if flag is not None and flags[name] is not None:
            given[flag] = flags[name]
        elif environ.get(env):
            given[env] = environ[env]
    try:
        return RawSettings.model_validate(given)
    except ValidationError as exc:
        problems = (f"setting {error['loc'][0]}: {error['msg']}" for error in exc.errors())
        raise ConfigError("\n".join(problems)) from exc


def _pod_namespace(namespace_file: Path) -> str | None:
    try:
        return namespace_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def in_pod(environ: Mapping[str, str]) -> bool:
    """Running in a Kubernetes pod: its service host is set and its account's token mounted."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN_FILE.is_file()


def _home_kubeconfig(environ: Mapping[str, str]) -> Path | None:
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    path = home / ".kube" / "config"
    return path if path.is_file() else None


def _choose_backend(
    raw: RawSettings, environ: Mapping[str, str]
) -> tuple[Literal["kubernetes", "local"], str, Path | None]:
    """The backend, why, and the kubeconfig to read (None: the pod's service account)."""
    chosen = "chosen by SCHEDULER_BACKEND/--backend"
    if raw.backend == "local":
        return "local", chosen, None
    named = raw.kubeconfig
    if named is None and in_pod(environ):
        why = chosen if raw.backend == "kubernetes" else "running in a pod with a service account"
        return "kubernetes", why, None
    found = named if named is not None else _home_kubeconfig(environ)
    if raw.backend == "kubernetes":
        return "kubernetes", chosen, found
    if named is not None:
        return "kubernetes", f"kubeconfig {named} named by KUBECONFIG/--kubeconfig", named
    if found is not None:
        return "kubernetes", f"kubeconfig {found} found", found
    return "local", "not in a pod and no kubeconfig found", None


def _secret(raw: RawSettings, name: Literal["api_token", "webhook_secret"]) -> SecretStr | None:
    """A secret from its variable or from the file its `_file` setting names (not both)."""
    value: SecretStr | None = getattr(raw, name)
    file: Path | None = getattr(raw, f"{name}_file")
    env, file_env = _NAMES[name][0], _NAMES[f"{name}_file"][0]
    if file is None:
        return value
    if value is not None:
        raise ConfigError(f"setting {env}: set it or {file_env}, not both")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"setting {file_env}: cannot read {file}: {why}") from exc
    # A file written by `echo` or mounted from a Secret often ends with a newline.
    secret = text.strip()
    if not secret:
        raise ConfigError(f"setting {file_env}: {file} is empty")
    return SecretStr(secret)


def _api_token(raw: RawSettings) -> SecretStr | None:
    token = _secret(raw, "api_token")
    if token is None:
        return None
    value = token.get_secret_value()
    if len(value) < MIN_API_TOKEN_LENGTH:
        raise ConfigError(
            f"setting SCHEDULER_API_TOKEN: too short, use at least {MIN_API_TOKEN_LENGTH} "
            "characters (e.g. `openssl rand -hex 32`)"
        )
    # It goes in an HTTP header: visible ASCII, no spaces.
    if not all("!" <= char <= "~" for char in value):
        raise ConfigError(
            "setting SCHEDULER_API_TOKEN: only visible ASCII characters, no spaces, please"
        )
    return token


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port to this machine."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def default_state_dir(environ: Mapping[str, str], *, app: str, environment: str, job: str) -> Path:
    """`$XDG_STATE_HOME/job-scheduler/<app>/<environment>/<job>`, else under `~/.local/state`
    (the XDG spec ignores a relative `XDG_STATE_HOME`)."""
    for part in (app, environment, job):
        if not part or part in (".", "..") or any(c in part for c in "/\0"):
            raise ConfigError(f"{part!r} cannot name a state directory")
    base = Path(environ.get("XDG_STATE_HOME", ""))
    if not base.is_absolute():
        base = Path(environ.get("HOME") or Path.home()) / ".local" / "state"
    return base / "job-scheduler" / app / environment / job


def check_exposure(settings: Settings) -> None:
    """Refuse to offer the local backend, which runs whatever command a request carries, beyond
    this machine without an API token."""
    if settings.backend != "local" or settings.api_token is not None:
        return
    if is_loopback(settings.host):
        return
    raise ConfigError(
        f"refusing to listen on {settings.host}: the local backend runs any command a request "
        "sends, so beyond loopback it needs an API token (SCHEDULER_API_TOKEN or "
        "--api-token-file); or keep --host 127.0.0.1 and use `ssh -L`"
    )


def describe_listening(settings: Settings) -> str:
    """Where the scheduler listens and who may use it, for the first log line."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if is_loopback(settings.host):
        who = "this machine only"
    elif settings.api_token is not None:
        who = "API token required"
    else:
        who = "no API token: whoever reaches the port may use the API"
    return f"listening on {host}:{settings.port} ({who})"


def _max_request_bytes(raw: RawSettings) -> int:
    """The operator's body limit, which must hold the largest payload; by default a batch's,
    or one job's with the largest payload JSON-escaped, whichever is larger."""
    if "max_request_bytes" not in raw.model_fields_set:
        largest_payload = _BODY_PER_PAYLOAD_BYTE * raw.max_payload_bytes
        return max(DEFAULT_MAX_REQUEST_BYTES, largest_payload + _BODY_BESIDE_PAYLOAD_BYTES)
    if raw.max_request_bytes <= raw.max_payload_bytes:
        raise ConfigError(
            f"setting SCHEDULER_MAX_REQUEST_BYTES: {raw.max_request_bytes} cannot carry a payload "
            f"of SCHEDULER_MAX_PAYLOAD_BYTES ({raw.max_payload_bytes}): make it larger"
        )
    return raw.max_request_bytes


def load_settings(
    argv: Sequence[str],
    environ: Mapping[str, str],
    namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE,
) -> Settings:
    """Raise ConfigError with one line per problem naming the setting or config field."""
    raw = _read(argv, environ)
    application = load_radixconfig(raw.config_file)
    definition = resolve_job(
        application, raw.job, environment=raw.environment, source=str(raw.config_file)
    )
    if raw.app and raw.app != definition.app:
        definition = definition.model_copy(update={"app": raw.app})
    backend, reason, kubeconfig = _choose_backend(raw, environ)
    max_request_bytes = _max_request_bytes(raw)
    if (
        backend == "kubernetes"
        and raw.max_payload_bytes > SECRET_CAPACITY_BYTES
        and raw.image is None
    ):
        raise ConfigError(
            "setting SCHEDULER_MAX_PAYLOAD_BYTES: payloads above 1 MiB need SCHEDULER_IMAGE, "
            "the scheduler's own image, which puts them together in each job's pod"
        )
    state_dir = raw.state_dir or default_state_dir(
        environ, app=definition.app, environment=definition.environment, job=definition.name
    )
    return Settings(
        **raw.model_dump(include=set(GivenSettings.model_fields) - {"max_request_bytes"}),
        max_request_bytes=max_request_bytes,
        definition=definition,
        namespace=raw.namespace
        or _pod_namespace(namespace_file)
        or f"{definition.app}-{definition.environment}",
        host=raw.host or (POD_HOST if in_pod(environ) else LOCAL_HOST),
        port=raw.port or definition.scheduler_port,
        api_token=_api_token(raw),
        webhook_secret=_secret(raw, "webhook_secret"),
        kubeconfig=kubeconfig,
        backend=backend,
        backend_reason=reason,
        state_dir=state_dir if backend == "local" else None,
        max_parallel=raw.max_parallel or os.cpu_count() or 1,
    )
