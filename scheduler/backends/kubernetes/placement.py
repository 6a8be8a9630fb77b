"""Where a job's pod may run: the node affinity and tolerations radix-operator gives job pods for
Radix's `runtime` and deprecated `node` settings, as plain dicts in the API's field names."""

from __future__ import annotations

import re
from typing import Any

from scheduler.backends.base import NodeSpec, RuntimeSpec

# Node labels and taints of a Radix cluster (radix-operator pkg/apis/kube/kube.go and
# pkg/apis/runtime/runtime.go). One key is both label and taint where Radix uses it as both.
JOB_NODE_POOL_KEY = "nodepooltasks"  # kube.RadixJobNodeLabel, kube.NodeTaintJobsKey
GPU_LABEL = "radix-node-gpu"  # kube.RadixGpuLabel
GPU_COUNT_KEY = "radix-node-gpu-count"  # kube.RadixGpuCountLabel, kube.NodeTaintGpuCountKey
NODE_TYPE_KEY = "radix-nodetype"  # runtime.NodeTypeAffinityKey, runtime.NodeTypeTolerationKey
OS_LABEL = "kubernetes.io/os"  # corev1.LabelOSStable
ARCH_LABEL = "kubernetes.io/arch"  # corev1.LabelArchStable
DEFAULT_OS = "linux"  # defaults.DefaultNodeSelectorOS
DEFAULT_ARCHITECTURE = "amd64"  # defaults.DefaultNodeSelectorArchitecture
# runtime.nodeTypes: a known node type fixes the architecture, whatever the request says.
NODE_TYPE_ARCHITECTURES = {"memory-optimized-v1": "amd64", "nvidia-v100-v1": "amd64"}

# Go's strconv.Atoi, which GetNodeGPUCount uses: an optional sign, ASCII digits, int64 range.
_ATOI = re.compile(r"[+-]?[0-9]+")
_MAX_INT64 = 2**63 - 1


def pod_placement(node: NodeSpec | None, runtime: RuntimeSpec | None) -> dict[str, Any]:
    """The `affinity` and `tolerations` to merge into a job's pod spec.

    Never empty: like radix-operator, a job with neither setting still gets the job node pool,
    Linux and amd64. Precedence follows getNodeAffinityForBatchJob and
    GetScheduledJobPodSpecTolerations: a node type, else a GPU request, else the job node pool.
    """
    node_type = runtime.node_type if runtime is not None else None
    # An empty node type counts as none. radix-operator's getNodeTypeTolerations would drop every
    # toleration for "" while the affinity still asks for the tainted job pool: an unschedulable
    # pod, so we do not copy that.
    if node_type:
        return {
            # Terms are ORed: the node type's pool, or the job pool. The job pool's taint, which
            # this pod does not tolerate, keeps it on the node type's pool in a Radix cluster.
            "affinity": _required(_node_type_term(node_type), _job_pool_term(runtime)),
            "tolerations": [
                {
                    "key": NODE_TYPE_KEY,
                    "operator": "Equal",
                    "value": node_type,
                    "effect": "NoSchedule",
                }
            ],
        }
    gpu_term = _gpu_term(node)
    if gpu_term is not None:
        # getNodeAffinityForGPUNode returns this term alone: no job pool, OS or architecture.
        return {"affinity": _required(gpu_term), "tolerations": [_tolerate(GPU_COUNT_KEY)]}
    return {
        "affinity": _required(_job_pool_term(runtime)),
        "tolerations": [_tolerate(JOB_NODE_POOL_KEY)],
    }


def gpu_limits(node: NodeSpec | None) -> dict[str, str]:
    """Extra container limits for `node`: none, as in radix-operator.

    Radix steers a GPU job onto nodes labelled with the GPU type and at least `gpuCount` GPUs, but
    never adds `nvidia.com/gpu` to the container (BuildResourceRequirement copies only the
    request's own `resources`); a job that wants the device plugin's limit sets it there.
    """
    del node  # the one place a GPU limit would come from, should Radix ever add one
    return {}


def _required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


def _tolerate(key: str) -> dict[str, str]:
    # getNodeTolerationExists
    return {"key": key, "operator": "Exists", "effect": "NoSchedule"}


def _node_type_term(node_type: str) -> dict[str, Any]:
    # getNodeTypeAffinitySelectorTerm
    return {"matchExpressions": [{"key": NODE_TYPE_KEY, "operator": "In", "values": [node_type]}]}


def _job_pool_term(runtime: RuntimeSpec | None) -> dict[str, Any]:
    # getNodeSelectorRequirementsForJobNodePool + getNodeSelectorRequirementsForRuntimeEnvironment
    return {
        "matchExpressions": [
            {"key": JOB_NODE_POOL_KEY, "operator": "Exists"},
            {"key": OS_LABEL, "operator": "In", "values": [DEFAULT_OS]},
            {"key": ARCH_LABEL, "operator": "In", "values": [_architecture(runtime)]},
        ]
    }


def _architecture(runtime: RuntimeSpec | None) -> str:
    # runtime.GetArchitectureFromRuntime: known node type, else the architecture, else amd64.
    if runtime is None:
        return DEFAULT_ARCHITECTURE
    fixed = NODE_TYPE_ARCHITECTURES.get(runtime.node_type or "")
    return fixed or runtime.architecture or DEFAULT_ARCHITECTURE


def _gpu_term(node: NodeSpec | None) -> dict[str, Any] | None:
    """The GPU node selector term, or None when `node` does not make this a GPU job.

    UseGPUNode: at least one GPU named and a valid (or no) count. An invalid count drops the whole
    GPU request rather than only the count (getNodeAffinityForGPUNode logs it and returns nil).
    """
    if node is None:
        return None
    including, excluding = _gpu_lists(node.gpu or "")
    if not including and not excluding:
        return None
    try:
        count = _gpu_count(node.gpu_count or "")
    except ValueError:
        return None
    expressions: list[dict[str, Any]] = []
    if count is not None:
        # "At least count" in the operators Kubernetes has (addNodeSelectorRequirementForGpuCount).
        expressions.append({"key": GPU_COUNT_KEY, "operator": "Gt", "values": [str(count - 1)]})
    if including:
        expressions.append({"key": GPU_LABEL, "operator": "In", "values": including})
    if excluding:
        expressions.append({"key": GPU_LABEL, "operator": "NotIn", "values": excluding})
    return {"matchExpressions": expressions}


def _gpu_lists(gpu: str) -> tuple[list[str], list[str]]:
    # GetNodeGPULists: comma-separated, trimmed, lower-cased; "-name" excludes; blanks dropped.
    including: list[str] = []
    excluding: list[str] = []
    for raw in gpu.split(","):
        item = raw.strip().lower()
        if item.startswith("-"):
            if name := item[1:].strip():
                excluding.append(name)
        elif item:
            including.append(item)
    return including, excluding


def _gpu_count(text: str) -> int | None:
    # GetNodeGPUCount: blank is "no count"; anything but a positive integer is an error.
    text = text.strip()
    if not text:
        return None
    if not _ATOI.fullmatch(text) or not 0 < int(text) <= _MAX_INT64:
        raise ValueError(f"invalid node GPU count: {text}")
    return int(text)
