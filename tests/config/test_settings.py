"""Settings come from flags or environment variables; mistakes stop the process with exit code 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler import settings
from scheduler.__main__ import main
from scheduler.errors import ConfigError
from scheduler.settings import Settings, load_settings

EXAMPLE = str(Path(__file__).parents[2] / "config" / "radixconfig.yaml")
README = Path(__file__).parents[2] / "README.md"
ENV = {"RADIX_CONFIG_FILE": EXAMPLE, "RADIX_COMPONENT": "compute", "RADIX_ENVIRONMENT": "dev"}


def test_defaults_come_from_the_radixconfig(tmp_path: Path) -> None:
    settings = load_settings([], ENV, namespace_file=tmp_path / "none")
    assert settings.port == 8000
    assert settings.definition.app == "myapp"
    assert settings.namespace == "myapp-dev"
    assert settings.history_limit == 10
    assert settings.log_level == "INFO"


def test_in_a_pod_the_namespace_is_the_pods_own(tmp_path: Path) -> None:
    (tmp_path / "namespace").write_text("team-a\n")
    assert load_settings([], ENV, namespace_file=tmp_path / "namespace").namespace == "team-a"


def test_flags_win_over_environment_variables(tmp_path: Path) -> None:
    env = {**ENV, "SCHEDULER_PORT": "9999", "LOG_LEVEL": "debug"}
    settings = load_settings(
        ["--port", "7000", "--job", "etl", "--app", "other", "--namespace", "ns"],
        env,
        namespace_file=tmp_path / "none",
    )
    assert (settings.port, settings.definition.name, settings.definition.app) == (
        7000,
        "etl",
        "other",
    )
    assert settings.namespace == "ns"
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT": "0"},
            "setting RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT: Input should be greater than or equal to 1",
        ),
        ({"SCHEDULER_PORT": "http"}, "setting SCHEDULER_PORT: Input should be a valid integer"),
        (
            {"LOG_LEVEL": "loud"},
            "setting LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        ({"RADIX_COMPONENT": ""}, "setting RADIX_COMPONENT: Field required"),
        ({"RADIX_COMPONENT": "nope"}, "spec.jobs: no job named 'nope'"),
    ],
)
def test_a_bad_setting_names_itself(env: dict[str, str], expected: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([], {**ENV, **env}, namespace_file=tmp_path / "none")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--port", "http"],
            "setting --port: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            ["--history-limit", "0"],
            "setting --history-limit: Input should be greater than or equal to 1",
        ),
        (["--job", ""], "setting --job: String should have at least 1 character"),
    ],
)
def test_a_bad_flag_names_the_flag_even_where_its_variable_is_fine(
    flags: list[str], expected: str, tmp_path: Path
) -> None:
    env = {
        **ENV,
        "SCHEDULER_PORT": "9000",
        "RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT": "5",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, env, namespace_file=tmp_path / "none")
    assert str(caught.value) == expected


def test_a_flag_is_never_taken_for_a_longer_one(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        load_settings(["--history", "3"], ENV, namespace_file=tmp_path / "none")
    assert caught.value.code == 2


def help_text(capsys: pytest.CaptureFixture[str]) -> str:
    """`--help` as one line: argparse wraps it to the terminal's width."""
    with pytest.raises(SystemExit) as caught:
        load_settings(["--help"], ENV)
    assert caught.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_names_each_flags_variable_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(capsys)
    assert "--config CONFIG_FILE RADIX_CONFIG_FILE, required" in text
    assert (
        "--history-limit HISTORY_LIMIT RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT, default 10"
        in text
    )
    assert "--port PORT SCHEDULER_PORT " in text
    assert "SCHEDULER_API_TOKEN and SCHEDULER_WEBHOOK_SECRET come from the environment only" in text


def documented_settings() -> list[tuple[str, str]]:
    """(flag, variable) of each row of the README's settings table; "" where there is no flag."""
    section = README.read_text(encoding="utf-8").split("\n## Settings\n")[1].split("\n### ")[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if re.match(r"\| (`|\|)", line)]
    return [(flag.strip(" `"), env.strip(" `")) for flag, env in rows]


def test_the_flags_and_variables_are_exactly_those_the_readme_documents(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_text(capsys)
    documented = documented_settings()
    assert documented, "the README has a settings table"
    flags = set(re.findall(r"--[a-z][a-z-]*", text)) - {"--help"}
    assert flags == {flag for flag, _ in documented if flag}
    for flag, env in documented:
        assert re.search(rf"{flag} [A-Z_]+ {env}\b" if flag else rf"\b{env}\b", text), (flag, env)


def test_main_exits_2_with_one_line_for_a_bad_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "radixconfig.yaml"
    bad.write_text(
        "apiVersion: radix.equinor.com/v1\nkind: RadixApplication\nmetadata: {name: a}\n"
        "spec:\n  environments: [{name: dev}]\n  jobs: [{name: compute, image: x}]\n"
    )
    assert main([], {**ENV, "RADIX_CONFIG_FILE": str(bad)}) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"job-scheduler: {bad}: spec.jobs[0].schedulerPort: Field required"


def run_scheduler(config: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`python -m scheduler` for job compute in dev, as an operator would start it."""
    command = [sys.executable, "-m", "scheduler", "--config", config, "--job", "compute"]
    return subprocess.run(
        [*command, "--environment", "dev", *flags],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_console_process_exits_2_on_a_missing_config(tmp_path: Path) -> None:
    result = run_scheduler(str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "missing.yaml: cannot read the radixconfig" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_kubeconfig_stops_the_process_with_exit_2(tmp_path: Path) -> None:
    result = run_scheduler(EXAMPLE, "--port", "18099", "--kubeconfig", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        f"job-scheduler: kubeconfig {tmp_path / 'nope'}: no such file"
    )


# -- choosing the backend ----------------------------------------------------------------------


def settings_in(tmp_path: Path, *flags: str, **env: str) -> Settings:
    """Settings as a process with HOME at `tmp_path/home` would load them."""
    environ = {**ENV, "HOME": str(tmp_path / "home"), **env}
    return load_settings(list(flags), environ, namespace_file=tmp_path / "none")


def a_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    return path


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of a pod, whose service-account token is mounted."""
    monkeypatch.setattr(settings, "SERVICE_ACCOUNT_TOKEN_FILE", a_file(tmp_path / "token"))
    return {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}


def test_auto_chooses_local_outside_a_pod_without_a_kubeconfig(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path)
    assert (chosen.backend, chosen.backend_reason) == (
        "local",
        "not in a pod and no kubeconfig found",
    )
    assert chosen.kubeconfig is None
    assert chosen.state_dir == tmp_path / "home/.local/state/job-scheduler/myapp/dev/compute"


def test_auto_chooses_kubernetes_for_a_kubeconfig_named_by_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = a_file(tmp_path / "kubeconfig")
    chosen = settings_in(tmp_path, KUBECONFIG=f"{kubeconfig}:{tmp_path / 'other'}")
    assert chosen.backend == "kubernetes"
    assert chosen.backend_reason == f"kubeconfig {kubeconfig} named by KUBECONFIG/--kubeconfig"
    assert (chosen.kubeconfig, chosen.state_dir) == (kubeconfig, None)


def test_auto_chooses_kubernetes_for_a_kubeconfig_named_by_the_flag(tmp_path: Path) -> None:
    kubeconfig = a_file(tmp_path / "kubeconfig")
    chosen = settings_in(tmp_path, "--kubeconfig", str(kubeconfig))
    assert chosen.backend == "kubernetes"
    assert str(kubeconfig) in chosen.backend_reason
    assert chosen.kubeconfig == kubeconfig


def test_auto_chooses_kubernetes_for_the_kubeconfig_in_home(tmp_path: Path) -> None:
    kubeconfig = a_file(tmp_path / "home" / ".kube" / "config")
    chosen = settings_in(tmp_path)
    assert (chosen.backend, chosen.backend_reason) == (
        "kubernetes",
        f"kubeconfig {kubeconfig} found",
    )
    assert chosen.kubeconfig == kubeconfig


def test_auto_chooses_kubernetes_in_a_pod_with_its_service_account(
    tmp_path: Path, pod: dict[str, str]
) -> None:
    chosen = settings_in(tmp_path, **pod)
    assert (chosen.backend, chosen.backend_reason) == (
        "kubernetes",
        "running in a pod with a service account",
    )
    assert chosen.kubeconfig is None, "the service account is the way in"


def test_a_service_host_without_a_service_account_token_is_no_pod(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path, KUBERNETES_SERVICE_HOST="10.0.0.1")
    assert chosen.backend == "local"


def test_backend_local_wins_over_a_pod_and_a_kubeconfig(
    tmp_path: Path, pod: dict[str, str]
) -> None:
    a_file(tmp_path / "home" / ".kube" / "config")
    chosen = settings_in(tmp_path, SCHEDULER_BACKEND="local", **pod)
    assert (chosen.backend, chosen.backend_reason) == (
        "local",
        "chosen by SCHEDULER_BACKEND/--backend",
    )
    assert chosen.kubeconfig is None


def test_backend_kubernetes_wins_where_nothing_points_at_a_cluster(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path, SCHEDULER_BACKEND="kubernetes")
    assert (chosen.backend, chosen.backend_reason) == (
        "kubernetes",
        "chosen by SCHEDULER_BACKEND/--backend",
    )
    assert chosen.state_dir is None


def test_backend_kubernetes_reads_the_kubeconfig_in_home(tmp_path: Path) -> None:
    kubeconfig = a_file(tmp_path / "home" / ".kube" / "config")
    assert settings_in(tmp_path, SCHEDULER_BACKEND="kubernetes").kubeconfig == kubeconfig


def test_the_backend_flag_wins_over_the_variable(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path, "--backend", "local", SCHEDULER_BACKEND="kubernetes")
    assert chosen.backend == "local"


def test_the_local_settings_default_to_the_cpus_and_10_mib(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path, SCHEDULER_BACKEND="local")
    assert chosen.max_parallel == (os.cpu_count() or 1)
    assert chosen.log_limit_bytes == 10 * 1024 * 1024


def test_the_local_settings_come_from_flags_and_variables(tmp_path: Path) -> None:
    chosen = settings_in(
        tmp_path,
        "--state-dir",
        str(tmp_path / "state"),
        "--max-parallel",
        "3",
        SCHEDULER_BACKEND="local",
        SCHEDULER_LOG_LIMIT_BYTES="65536",
    )
    assert (chosen.state_dir, chosen.max_parallel, chosen.log_limit_bytes) == (
        tmp_path / "state",
        3,
        65536,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SCHEDULER_BACKEND": "docker"},
            "setting SCHEDULER_BACKEND: Input should be 'auto', 'kubernetes' or 'local'",
        ),
        (
            {"SCHEDULER_MAX_PARALLEL": "0"},
            "setting SCHEDULER_MAX_PARALLEL: Input should be greater than or equal to 1",
        ),
        (
            {"SCHEDULER_LOG_LIMIT_BYTES": "100"},
            "setting SCHEDULER_LOG_LIMIT_BYTES: Input should be greater than or equal to 4096",
        ),
    ],
)
def test_a_bad_local_setting_names_itself(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_in(tmp_path, **env)
    assert expected in str(caught.value)


# -- where it listens, and with which key ------------------------------------------------------

TOKEN = "a-token-of-32-characters-or-so-1"


def test_outside_a_pod_the_scheduler_listens_on_loopback_only(tmp_path: Path) -> None:
    assert settings_in(tmp_path).host == "127.0.0.1"
    assert settings_in(tmp_path, SCHEDULER_BACKEND="kubernetes").host == "127.0.0.1"


def test_in_a_pod_the_scheduler_listens_on_every_address(
    tmp_path: Path, pod: dict[str, str]
) -> None:
    assert settings_in(tmp_path, **pod).host == "0.0.0.0"


def test_the_host_setting_wins_over_either_default(tmp_path: Path, pod: dict[str, str]) -> None:
    assert settings_in(tmp_path, "--host", "10.1.2.3", **pod).host == "10.1.2.3"
    assert settings_in(tmp_path, SCHEDULER_HOST="0.0.0.0").host == "0.0.0.0"


def test_allowed_hosts_are_a_comma_separated_list_of_names(tmp_path: Path) -> None:
    chosen = settings_in(tmp_path, SCHEDULER_ALLOWED_HOSTS=" Scheduler.Example.COM., ,other ")
    assert chosen.allowed_hosts == ("scheduler.example.com", "other")
    assert settings_in(tmp_path, "--allowed-hosts", "a,b").allowed_hosts == ("a", "b")
    assert settings_in(tmp_path).allowed_hosts == ()


def test_the_api_token_comes_from_a_variable_or_a_file_without_its_newline(
    tmp_path: Path,
) -> None:
    assert settings_in(tmp_path).api_token is None
    from_env = settings_in(tmp_path, SCHEDULER_API_TOKEN=TOKEN).api_token
    assert from_env is not None and from_env.get_secret_value() == TOKEN
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    for chosen in (
        settings_in(tmp_path, "--api-token-file", str(token_file)),
        settings_in(tmp_path, SCHEDULER_API_TOKEN_FILE=str(token_file)),
    ):
        assert chosen.api_token is not None
        assert chosen.api_token.get_secret_value() == TOKEN
        assert TOKEN not in repr(chosen), "the token never shows in a settings' repr"


@pytest.mark.parametrize(
    ("content", "env", "expected"),
    [
        (None, {}, "setting SCHEDULER_API_TOKEN_FILE: cannot read"),
        ("\n", {}, "is empty"),
        ("short", {}, "setting SCHEDULER_API_TOKEN: too short, use at least 16 characters"),
        ("with spaces in the middle of it", {}, "only visible ASCII characters, no spaces"),
        (TOKEN, {"SCHEDULER_API_TOKEN": TOKEN}, "set it or SCHEDULER_API_TOKEN_FILE, not both"),
    ],
)
def test_a_bad_api_token_names_its_setting(
    tmp_path: Path, content: str | None, env: dict[str, str], expected: str
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    with pytest.raises(ConfigError) as caught:
        settings_in(tmp_path, SCHEDULER_API_TOKEN_FILE=str(token_file), **env)
    assert expected in str(caught.value)


def test_secrets_cannot_be_given_as_flags(tmp_path: Path) -> None:
    for flag in ("--api-token", "--webhook-secret"):
        with pytest.raises(SystemExit) as caught:
            settings_in(tmp_path, flag, "s3cret-s3cret-s3cret")
        assert caught.value.code == 2


def test_the_webhook_secret_comes_from_a_variable_or_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("from-a-file\n")
    from_file = settings_in(tmp_path, "--webhook-secret-file", str(secret_file)).webhook_secret
    assert from_file is not None and from_file.get_secret_value() == "from-a-file"
    from_env = settings_in(tmp_path, SCHEDULER_WEBHOOK_SECRET="from-env").webhook_secret
    assert from_env is not None and from_env.get_secret_value() == "from-env"
    with pytest.raises(ConfigError, match="not both"):
        settings_in(
            tmp_path,
            SCHEDULER_WEBHOOK_SECRET="x",
            SCHEDULER_WEBHOOK_SECRET_FILE=str(secret_file),
        )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("scheduler.localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("my-laptop", False),
        ("localhost.evil.example", False),
    ],
)
def test_only_loopback_names_and_addresses_keep_the_port_to_this_machine(
    host: str, loopback: bool
) -> None:
    assert settings.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("flags", "env", "refused"),
    [
        (("--host", "0.0.0.0"), {}, True),
        (("--host", "192.168.1.20"), {}, True),
        (("--host", "0.0.0.0"), {"SCHEDULER_API_TOKEN": TOKEN}, False),
        (("--host", "127.0.0.1"), {}, False),
        ((), {}, False),
        (("--host", "0.0.0.0", "--backend", "kubernetes"), {}, False),
    ],
)
def test_only_a_local_backend_beyond_loopback_without_a_token_is_refused(
    tmp_path: Path, flags: tuple[str, ...], env: dict[str, str], refused: bool
) -> None:
    chosen = settings_in(tmp_path, *flags, **env)
    if refused:
        with pytest.raises(ConfigError, match=f"refusing to listen on {chosen.host}"):
            settings.check_exposure(chosen)
    else:
        settings.check_exposure(chosen)


def test_main_refuses_a_local_backend_on_every_address_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {**ENV, "HOME": str(tmp_path), "SCHEDULER_STATE_DIR": str(tmp_path / "state")}
    assert main(["--host", "0.0.0.0"], environ) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("job-scheduler: refusing to listen on 0.0.0.0")
    assert not (tmp_path / "state").exists(), "nothing started"


def test_the_first_log_line_says_where_and_to_whom_it_listens(tmp_path: Path) -> None:
    listening = settings.describe_listening
    assert listening(settings_in(tmp_path)) == "listening on 127.0.0.1:8000 (this machine only)"
    assert listening(settings_in(tmp_path, "--host", "::1", "--port", "9000")) == (
        "listening on [::1]:9000 (this machine only)"
    )
    exposed = settings_in(tmp_path, "--host", "0.0.0.0", SCHEDULER_API_TOKEN=TOKEN)
    assert listening(exposed) == "listening on 0.0.0.0:8000 (API token required)"
    open_cluster = settings_in(tmp_path, "--host", "0.0.0.0", SCHEDULER_BACKEND="kubernetes")
    assert listening(open_cluster) == (
        "listening on 0.0.0.0:8000 (no API token: whoever reaches the port may use the API)"
    )


def test_the_longest_wait_defaults_to_300_seconds_and_comes_from_a_flag_or_a_variable(
    tmp_path: Path,
) -> None:
    none = tmp_path / "none"
    assert load_settings([], ENV, namespace_file=none).max_wait_seconds == 300
    env = {**ENV, "SCHEDULER_MAX_WAIT_SECONDS": "60"}
    assert load_settings([], env, namespace_file=none).max_wait_seconds == 60
    assert load_settings(["--max-wait", "0"], env, namespace_file=none).max_wait_seconds == 0
    with pytest.raises(ConfigError) as caught:
        load_settings(["--max-wait", "1.5"], ENV, namespace_file=none)
    assert str(caught.value).startswith("setting --max-wait: Input should be a valid integer")
