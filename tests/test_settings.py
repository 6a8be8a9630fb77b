"""Settings come from flags or environment variables; mistakes stop the process with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.__main__ import main
from scheduler.errors import ConfigError
from scheduler.settings import load_settings

EXAMPLE = str(Path(__file__).parent.parent / "config" / "radixconfig.yaml")
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
