"""Runtime settings from flags and environment variables (flags win), resolved against the
radixconfig. `environ` is injectable so tests never touch `os.environ`."""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from scheduler.errors import ConfigError
from scheduler.radixconfig import (
    JobDefinition,
    load_radixconfig,
    resolve_job,
)

SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
DEFAULT_MAX_REQUEST_BYTES = 32 * 1024 * 1024
DEFAULT_CREATE_GRACE_SECONDS = 30.0
DEFAULT_LOG_LIMIT_BYTES = 10 * 1024 * 1024
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 24 * 3600.0
DEFAULT_EVENTS_HEARTBEAT_SECONDS = 15.0
# `/events`: how many recent events a returning client can catch up on, and how many one slow
# client may have queued before it is told to start over.
DEFAULT_RING_SIZE = 1000
DEFAULT_QUEUE_SIZE = 256
SERVICE_ACCOUNT_TOKEN_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# Where the scheduler listens unless told: in a pod its Service and probes reach it by the pod's
# address; anywhere else only this machine does, since a request may carry its own command.
POD_HOST = "0.0.0.0"
LOCAL_HOST = "127.0.0.1"
# An API token shorter than this is too easily guessed.
MIN_API_TOKEN_LENGTH = 16

# flag (None: environment only, for secrets, which a flag would show in `ps`), environment
# variable, settings field
_SOURCES: tuple[tuple[str | None, str | None, str], ...] = (
    ("--config", "RADIX_CONFIG_FILE", "config_file"),
    ("--job", "RADIX_COMPONENT", "job"),
    ("--environment", "RADIX_ENVIRONMENT", "environment"),
    ("--app", "RADIX_APP", "app"),
    ("--namespace", "SCHEDULER_NAMESPACE", "namespace"),
    ("--port", "SCHEDULER_PORT", "port"),
    ("--kubeconfig", "KUBECONFIG", "kubeconfig"),
    ("--history-limit", "RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT", "history_limit"),
    ("--log-level", "LOG_LEVEL", "log_level"),
    ("--host", "SCHEDULER_HOST", "host"),
    ("--allowed-hosts", "SCHEDULER_ALLOWED_HOSTS", "allowed_hosts"),
    ("--api-token-file", "SCHEDULER_API_TOKEN_FILE", "api_token_file"),
    (None, "SCHEDULER_API_TOKEN", "api_token"),
    ("--shutdown-timeout", "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS", "shutdown_timeout_seconds"),
    ("--max-request-bytes", "SCHEDULER_MAX_REQUEST_BYTES", "max_request_bytes"),
    ("--create-grace", "SCHEDULER_CREATE_GRACE_SECONDS", "create_grace_seconds"),
    ("--webhook-secret-file", "SCHEDULER_WEBHOOK_SECRET_FILE", "webhook_secret_file"),
    (None, "SCHEDULER_WEBHOOK_SECRET", "webhook_secret"),
    ("--webhook-attempts", "SCHEDULER_WEBHOOK_ATTEMPTS", "webhook_attempts"),
    ("--webhook-timeout", "SCHEDULER_WEBHOOK_TIMEOUT_SECONDS", "webhook_timeout_seconds"),
    ("--webhook-queue-size", "SCHEDULER_WEBHOOK_QUEUE_SIZE", "webhook_queue_size"),
    ("--backend", "SCHEDULER_BACKEND", "backend"),
    ("--state-dir", "SCHEDULER_STATE_DIR", "state_dir"),
    ("--max-parallel", "SCHEDULER_MAX_PARALLEL", "max_parallel"),
    ("--log-limit-bytes", "SCHEDULER_LOG_LIMIT_BYTES", "log_limit_bytes"),
    ("--idempotency-ttl", "SCHEDULER_IDEMPOTENCY_TTL_SECONDS", "idempotency_ttl_seconds"),
    ("--events-ring-size", "SCHEDULER_EVENTS_RING_SIZE", "events_ring_size"),
    ("--events-queue-size", "SCHEDULER_EVENTS_QUEUE_SIZE", "events_queue_size"),
    ("--events-heartbeat", "SCHEDULER_EVENTS_HEARTBEAT_SECONDS", "events_heartbeat_seconds"),
)
_NAME_OF_FIELD = {field: env or flag for flag, env, field in _SOURCES}


class RawSettings(BaseModel):
    """What the operator typed, validated field by field."""

    model_config = ConfigDict(extra="forbid")

    config_file: Path
    job: Annotated[str, Field(min_length=1)]
    environment: Annotated[str, Field(min_length=1)]
    app: str | None = None
    namespace: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    kubeconfig: Path | None = None
    history_limit: Annotated[int, Field(ge=1)] = 10
    log_level: LogLevel = "INFO"
    host: str | None = None
    allowed_hosts: str = ""
    api_token_file: Path | None = None
    api_token: SecretStr | None = None
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = 25.0
    max_request_bytes: Annotated[int, Field(ge=1024 * 1024)] = DEFAULT_MAX_REQUEST_BYTES
    create_grace_seconds: Annotated[float, Field(gt=0)] = DEFAULT_CREATE_GRACE_SECONDS
    webhook_secret_file: Path | None = None
    webhook_secret: SecretStr | None = None
    webhook_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    webhook_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    webhook_queue_size: Annotated[int, Field(ge=1)] = 10_000
    backend: Literal["auto", "kubernetes", "local"] = "auto"
    state_dir: Path | None = None
    max_parallel: Annotated[int, Field(ge=1)] | None = None
    log_limit_bytes: Annotated[int, Field(ge=4096)] = DEFAULT_LOG_LIMIT_BYTES
    idempotency_ttl_seconds: Annotated[float, Field(gt=0)] = DEFAULT_IDEMPOTENCY_TTL_SECONDS
    events_ring_size: Annotated[int, Field(ge=1)] = DEFAULT_RING_SIZE
    events_queue_size: Annotated[int, Field(ge=1)] = DEFAULT_QUEUE_SIZE
    events_heartbeat_seconds: Annotated[float, Field(gt=0)] = DEFAULT_EVENTS_HEARTBEAT_SECONDS


class Settings(BaseModel):
    """Everything the process needs, with every default resolved."""

    model_config = ConfigDict(frozen=True)

    definition: JobDefinition
    config_file: Path
    namespace: str
    host: str
    port: int
    # Host names the scheduler answers to besides its own (loopback, IP literals, its Service).
    allowed_hosts: tuple[str, ...] = ()
    # With a token every request but the probes and the console's files needs
    # `Authorization: Bearer <token>`; from a file or the environment, never a flag.
    api_token: SecretStr | None = None
    kubeconfig: Path | None
    history_limit: int
    log_level: LogLevel
    shutdown_timeout_seconds: float
    # The largest request body (a batch carries up to 500 payloads of 1 MiB each).
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # How long a create may take before a restarted scheduler (or another replica) removes what
    # a crashed one left half-made.
    create_grace_seconds: float = DEFAULT_CREATE_GRACE_SECONDS
    # Signs webhook bodies (HMAC-SHA256) when set; from a file or the environment (a Secret),
    # never a flag or the radixconfig.
    webhook_secret: SecretStr | None = None
    webhook_attempts: int = 5
    webhook_timeout_seconds: float = 10.0
    webhook_queue_size: int = 10_000
    # Where jobs run, and why that one (the first log line says it).
    backend: Literal["kubernetes", "local"] = "kubernetes"
    backend_reason: str = "chosen by SCHEDULER_BACKEND"
    # The local backend's database, payloads and logs; its parallelism; each log's bound.
    state_dir: Path | None = None
    max_parallel: int = 1
    log_limit_bytes: int = DEFAULT_LOG_LIMIT_BYTES
    # How long a POST's Idempotency-Key is honoured: a repeat within it gets the first's job.
    idempotency_ttl_seconds: float = DEFAULT_IDEMPOTENCY_TTL_SECONDS
    # GET /api/v1/events: events kept for clients that reconnect, events each client may fall
    # behind before it is dropped, and the idle time after which a comment keeps it open.
    events_ring_size: int = DEFAULT_RING_SIZE
    events_queue_size: int = DEFAULT_QUEUE_SIZE
    events_heartbeat_seconds: float = DEFAULT_EVENTS_HEARTBEAT_SECONDS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="job-scheduler",
        description="Serve the Radix job-scheduler API for one job in one environment.",
        # No prefixes: `--api-token <secret>` must not be taken for `--api-token-file`.
        allow_abbrev=False,
    )
    for flag, env, field in _SOURCES:
        if flag is not None:
            parser.add_argument(flag, dest=field, default=None, help=f"env {env}" if env else None)
    return parser


def _raw_values(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    flags = vars(_parser().parse_args(list(argv)))
    values: dict[str, str] = {}
    for _flag, env, field in _SOURCES:
        if flags.get(field) is not None:
            values[field] = flags[field]
        elif env and environ.get(env):
            values[field] = environ[env]
    if "log_level" in values:
        values["log_level"] = values["log_level"].upper()
    # KUBECONFIG may list several files; the first one is the one we read.
    if "kubeconfig" in values:
        values["kubeconfig"] = values["kubeconfig"].split(":")[0]
    return values


def _describe_settings_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "settings"
        lines.append(f"setting {_NAME_OF_FIELD.get(field, field)}: {item['msg']}")
    return "\n".join(lines)


def _pod_namespace(namespace_file: Path) -> str | None:
    try:
        return namespace_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def in_pod(environ: Mapping[str, str]) -> bool:
    """Running in a Kubernetes pod: its service host is set and its account's token mounted."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_TOKEN_FILE.is_file()


def _choose_backend(
    raw: RawSettings, environ: Mapping[str, str]
) -> tuple[Literal["kubernetes", "local"], str, Path | None]:
    """The backend, why, and the kubeconfig to read (None: the pod's service account)."""
    if raw.backend == "local":
        return "local", "chosen by SCHEDULER_BACKEND/--backend", None
    pod = in_pod(environ)
    found: Path | None
    if raw.kubeconfig is not None:
        found = raw.kubeconfig
    else:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        default = home / ".kube" / "config"
        found = default if default.is_file() else None
    if raw.backend == "kubernetes":
        # In a pod without a kubeconfig named, the service account is the way in.
        kubeconfig = raw.kubeconfig if raw.kubeconfig is not None or pod else found
        return "kubernetes", "chosen by SCHEDULER_BACKEND/--backend", kubeconfig
    if pod and raw.kubeconfig is None:
        return "kubernetes", "running in a pod with a service account", None
    if raw.kubeconfig is not None:
        return "kubernetes", f"kubeconfig {raw.kubeconfig} named by KUBECONFIG/--kubeconfig", found
    if found is not None:
        return "kubernetes", f"kubeconfig {found} found", found
    return "local", "not in a pod and no kubeconfig found", None


def _secret(
    value: SecretStr | None, file: Path | None, env: str, file_setting: str
) -> SecretStr | None:
    """A secret from its variable or from the file another setting names (not both)."""
    if file is None:
        return value
    if value is not None:
        raise ConfigError(f"setting {env}: set it or {file_setting}, not both")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(f"setting {file_setting}: cannot read {file}: {why}") from exc
    # A file written by `echo` or mounted from a Secret often ends with a newline.
    secret = text.strip()
    if not secret:
        raise ConfigError(f"setting {file_setting}: {file} is empty")
    return SecretStr(secret)


def _api_token(raw: RawSettings) -> SecretStr | None:
    token = _secret(
        raw.api_token, raw.api_token_file, "SCHEDULER_API_TOKEN", "SCHEDULER_API_TOKEN_FILE"
    )
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


def _allowed_hosts(text: str) -> tuple[str, ...]:
    names = (name.strip().lower().rstrip(".") for name in text.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port to this machine."""
    name = host.strip().lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


def default_state_dir(environ: Mapping[str, str], app: str, environment: str, job: str) -> Path:
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


def load_settings(
    argv: Sequence[str],
    environ: Mapping[str, str],
    namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE_FILE,
) -> Settings:
    """Raise ConfigError with one line per problem naming the setting or config field."""
    try:
        raw = RawSettings.model_validate(_raw_values(argv, environ))
    except ValidationError as exc:
        raise ConfigError(_describe_settings_error(exc)) from exc
    application = load_radixconfig(raw.config_file)
    definition = resolve_job(application, raw.job, raw.environment, str(raw.config_file))
    if raw.app and raw.app != definition.app:
        definition = definition.model_copy(update={"app": raw.app})
    namespace = (
        raw.namespace
        or _pod_namespace(namespace_file)
        or f"{definition.app}-{definition.environment}"
    )
    backend, reason, kubeconfig = _choose_backend(raw, environ)
    host = raw.host or (POD_HOST if in_pod(environ) else LOCAL_HOST)
    webhook_secret = _secret(
        raw.webhook_secret,
        raw.webhook_secret_file,
        "SCHEDULER_WEBHOOK_SECRET",
        "SCHEDULER_WEBHOOK_SECRET_FILE",
    )
    state_dir = raw.state_dir or default_state_dir(
        environ, definition.app, definition.environment, definition.name
    )
    return Settings(
        backend=backend,
        backend_reason=reason,
        state_dir=state_dir if backend == "local" else None,
        max_parallel=raw.max_parallel or os.cpu_count() or 1,
        log_limit_bytes=raw.log_limit_bytes,
        idempotency_ttl_seconds=raw.idempotency_ttl_seconds,
        events_ring_size=raw.events_ring_size,
        events_queue_size=raw.events_queue_size,
        events_heartbeat_seconds=raw.events_heartbeat_seconds,
        definition=definition,
        config_file=raw.config_file,
        namespace=namespace,
        host=host,
        port=raw.port or definition.scheduler_port,
        allowed_hosts=_allowed_hosts(raw.allowed_hosts),
        api_token=_api_token(raw),
        kubeconfig=kubeconfig,
        history_limit=raw.history_limit,
        log_level=raw.log_level,
        shutdown_timeout_seconds=raw.shutdown_timeout_seconds,
        max_request_bytes=raw.max_request_bytes,
        create_grace_seconds=raw.create_grace_seconds,
        webhook_secret=webhook_secret,
        webhook_attempts=raw.webhook_attempts,
        webhook_timeout_seconds=raw.webhook_timeout_seconds,
        webhook_queue_size=raw.webhook_queue_size,
    )
