"""A job's `runtime` and `node` place its pod the way radix-operator places job pods, in a pod spec
the Kubernetes 1.31 schema accepts."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from scheduler.backends.base import NodeSpec, RuntimeSpec
from scheduler.backends.kubernetes.placement import gpu_limits, pod_placement


def job_pool(architecture: str) -> dict[str, Any]:
    return {
        "matchExpressions": [
            {"key": "nodepooltasks", "operator": "Exists"},
            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
            {"key": "kubernetes.io/arch", "operator": "In", "values": [architecture]},
        ]
    }


def terms(*expressions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"matchExpressions": list(e)} for e in expressions]


def placed(node_terms: list[dict[str, Any]], *tolerations: dict[str, str]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": node_terms}
            }
        },
        "tolerations": list(tolerations),
    }


JOB_POOL_TOLERATION = {"key": "nodepooltasks", "operator": "Exists", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "radix-node-gpu-count", "operator": "Exists", "effect": "NoSchedule"}


def node_type_toleration(node_type: str) -> dict[str, str]:
    return {
        "key": "radix-nodetype",
        "operator": "Equal",
        "value": node_type,
        "effect": "NoSchedule",
    }


def gpu_in(*names: str) -> dict[str, Any]:
    return {"key": "radix-node-gpu", "operator": "In", "values": list(names)}


def gpu_not_in(*names: str) -> dict[str, Any]:
    return {"key": "radix-node-gpu", "operator": "NotIn", "values": list(names)}


def at_least_gpus(count: int) -> dict[str, Any]:
    return {"key": "radix-node-gpu-count", "operator": "Gt", "values": [str(count - 1)]}


def node_type_is(node_type: str) -> dict[str, Any]:
    return {"key": "radix-nodetype", "operator": "In", "values": [node_type]}


V100_NOT_K80 = NodeSpec(gpu="nvidia-v100, -nvidia-k80")

RULES = [
    pytest.param(
        None,
        None,
        placed([job_pool("amd64")], JOB_POOL_TOLERATION),
        id="a_job_without_runtime_or_node_still_runs_on_linux_amd64_job_nodes",
    ),
    pytest.param(
        None,
        RuntimeSpec(),
        placed([job_pool("amd64")], JOB_POOL_TOLERATION),
        id="an_empty_runtime_means_amd64",
    ),
    pytest.param(
        None,
        RuntimeSpec(architecture="arm64"),
        placed([job_pool("arm64")], JOB_POOL_TOLERATION),
        id="an_arm64_runtime_selects_arm64_job_nodes",
    ),
    pytest.param(
        None,
        RuntimeSpec(node_type="gpu-nvidia-1-v1"),
        placed(
            [{"matchExpressions": [node_type_is("gpu-nvidia-1-v1")]}, job_pool("amd64")],
            node_type_toleration("gpu-nvidia-1-v1"),
        ),
        id="a_node_type_selects_its_pool_and_tolerates_only_its_taint",
    ),
    pytest.param(
        None,
        RuntimeSpec(architecture="arm64", node_type="memory-optimized-v1"),
        placed(
            [{"matchExpressions": [node_type_is("memory-optimized-v1")]}, job_pool("amd64")],
            node_type_toleration("memory-optimized-v1"),
        ),
        id="a_known_node_type_fixes_the_architecture",
    ),
    pytest.param(
        None,
        RuntimeSpec(architecture="arm64", node_type="custom-arm-v1"),
        placed(
            [{"matchExpressions": [node_type_is("custom-arm-v1")]}, job_pool("arm64")],
            node_type_toleration("custom-arm-v1"),
        ),
        id="an_unknown_node_type_keeps_the_requested_architecture",
    ),
    pytest.param(
        V100_NOT_K80,
        RuntimeSpec(node_type="gpu-nvidia-1-v1"),
        placed(
            [{"matchExpressions": [node_type_is("gpu-nvidia-1-v1")]}, job_pool("amd64")],
            node_type_toleration("gpu-nvidia-1-v1"),
        ),
        id="a_node_type_wins_over_a_gpu_request",
    ),
    pytest.param(
        V100_NOT_K80,
        RuntimeSpec(node_type=""),
        placed(terms([gpu_in("nvidia-v100"), gpu_not_in("nvidia-k80")]), GPU_TOLERATION),
        id="an_empty_node_type_counts_as_none",
    ),
    pytest.param(
        V100_NOT_K80,
        None,
        placed(terms([gpu_in("nvidia-v100"), gpu_not_in("nvidia-k80")]), GPU_TOLERATION),
        id="a_gpu_list_selects_named_gpus_and_excludes_minus_prefixed_ones",
    ),
    pytest.param(
        NodeSpec(gpu="nvidia-v100", gpu_count="2"),
        None,
        placed(terms([at_least_gpus(2), gpu_in("nvidia-v100")]), GPU_TOLERATION),
        id="a_gpu_count_asks_for_nodes_with_at_least_that_many_gpus",
    ),
    pytest.param(
        NodeSpec(gpu=" NVIDIA-V100 ,, - , -Nvidia-K80 ", gpu_count=" +4 "),
        None,
        placed(
            terms([at_least_gpus(4), gpu_in("nvidia-v100"), gpu_not_in("nvidia-k80")]),
            GPU_TOLERATION,
        ),
        id="gpu_names_are_trimmed_and_lower_cased_and_blank_items_dropped",
    ),
    pytest.param(
        NodeSpec(gpu="-nvidia-k80"),
        None,
        placed(terms([gpu_not_in("nvidia-k80")]), GPU_TOLERATION),
        id="excluding_a_gpu_alone_still_makes_a_gpu_job",
    ),
    pytest.param(
        NodeSpec(gpu="nvidia-v100"),
        RuntimeSpec(architecture="arm64"),
        placed(terms([gpu_in("nvidia-v100")]), GPU_TOLERATION),
        id="a_gpu_job_leaves_out_the_job_pool_and_architecture",
    ),
    pytest.param(
        NodeSpec(gpu="nvidia-v100", gpu_count="two"),
        RuntimeSpec(architecture="arm64"),
        placed([job_pool("arm64")], JOB_POOL_TOLERATION),
        id="an_invalid_gpu_count_drops_the_whole_gpu_request",
    ),
    pytest.param(
        NodeSpec(gpu_count="2"),
        None,
        placed([job_pool("amd64")], JOB_POOL_TOLERATION),
        id="a_gpu_count_without_a_gpu_is_ignored",
    ),
]


@pytest.mark.parametrize(("node", "runtime", "expected"), RULES)
def test_a_job_pod_is_placed_as_radix_places_it(
    node: NodeSpec | None, runtime: RuntimeSpec | None, expected: dict[str, Any]
) -> None:
    assert pod_placement(node, runtime) == expected


@pytest.mark.parametrize("count", ["0", "-1", "1.5", "1_0", "0x2", "٣", "9223372036854775808"])
def test_a_gpu_count_that_go_cannot_read_as_a_positive_int64_is_invalid(count: str) -> None:
    assert pod_placement(NodeSpec(gpu="nvidia-v100", gpu_count=count), None) == placed(
        [job_pool("amd64")], JOB_POOL_TOLERATION
    )


@pytest.mark.parametrize(
    "node",
    [None, NodeSpec(), V100_NOT_K80, NodeSpec(gpu="nvidia-v100", gpu_count="2")],
    ids=["no_node", "empty_node", "gpu_list", "gpu_and_count"],
)
def test_a_node_adds_no_gpu_limit_because_radix_adds_none(node: NodeSpec | None) -> None:
    assert gpu_limits(node) == {}


def test_each_call_returns_fresh_dicts_a_caller_may_change() -> None:
    first = pod_placement(None, None)
    first["tolerations"].append({"key": "x", "operator": "Exists"})
    assert pod_placement(None, None)["tolerations"] == [JOB_POOL_TOLERATION]


def job_manifest(placement: dict[str, Any], limits: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "compute-20210407105556-rkwaibwe"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "compute",
                            "image": "busybox:1.36",
                            "resources": {"limits": {"memory": "64Mi", **limits}},
                        }
                    ],
                    **placement,
                }
            }
        },
    }


def check_what_the_schema_cannot(placement: dict[str, Any]) -> None:
    # The OpenAPI schema leaves operator/value pairing to the apiserver
    # (ValidateNodeSelectorRequirement, ValidateTolerations); check those rules here.
    required = placement["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert required["nodeSelectorTerms"]
    for term in required["nodeSelectorTerms"]:
        assert term["matchExpressions"]
        for requirement in term["matchExpressions"]:
            operator, values = requirement["operator"], requirement.get("values", [])
            if operator in ("In", "NotIn"):
                assert values
            elif operator in ("Exists", "DoesNotExist"):
                assert not values
            else:
                assert operator in ("Gt", "Lt")
                assert len(values) == 1
                assert int(values[0]) >= 0
    for toleration in placement["tolerations"]:
        assert toleration["operator"] in ("Exists", "Equal")
        assert toleration["effect"] == "NoSchedule"
        assert toleration["operator"] == "Equal" or "value" not in toleration


@pytest.mark.parametrize(
    ("node", "runtime"), [pytest.param(*rule.values[:2], id=rule.id) for rule in RULES]
)
def test_the_placed_job_is_valid_for_kubernetes_1_31(
    node: NodeSpec | None, runtime: RuntimeSpec | None
) -> None:
    placement = pod_placement(node, runtime)
    check_what_the_schema_cannot(placement)
    manifest = job_manifest(placement, gpu_limits(node))
    kubernetes_validate.validate(manifest, "1.31.0", strict=True)
