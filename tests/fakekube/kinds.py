"""The resource kinds the fake serves, and what differs between them on the API surface."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    name: str  # "Job"
    plural: str  # "jobs"
    group: str  # "" for the core group
    version: str = "v1"
    namespaced: bool = True
    status_subresource: bool = False
    has_generation: bool = False
    # batch/v1 Jobs orphan their pods unless told otherwise, for backward compatibility.
    default_propagation: str = "Background"
    # Some registries answer a finished DELETE with the object, others with Status Success.
    returns_deleted_object: bool = False
    name_rule: str = "subdomain"  # "subdomain" | "label" (RFC 1123) | "dns1035"
    field_labels: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`jobs.batch` or `pods`: how messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        """`Job.batch` or `Secret`: how Invalid messages name the kind."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def list_kind(self) -> str:
        return f"{self.name}List"


_METADATA_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

JOB = Kind(
    "Job",
    "jobs",
    "batch",
    status_subresource=True,
    has_generation=True,
    default_propagation="Orphan",
    field_labels=_METADATA_FIELDS | {"status.successful"},
)
POD = Kind(
    "Pod",
    "pods",
    "",
    status_subresource=True,
    returns_deleted_object=True,
    field_labels=_METADATA_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
)
SECRET = Kind("Secret", "secrets", "", field_labels=_METADATA_FIELDS | {"type"})
CONFIG_MAP = Kind("ConfigMap", "configmaps", "", field_labels=_METADATA_FIELDS)
SERVICE = Kind(
    "Service",
    "services",
    "",
    returns_deleted_object=True,
    name_rule="dns1035",
    field_labels=_METADATA_FIELDS | {"spec.clusterIP", "spec.type"},
)
EVENT = Kind(
    "Event",
    "events",
    "",
    field_labels=_METADATA_FIELDS
    | {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
)
NAMESPACE = Kind(
    "Namespace",
    "namespaces",
    "",
    namespaced=False,
    returns_deleted_object=True,
    name_rule="label",
    field_labels=frozenset({"metadata.name", "status.phase"}),
)

KINDS: dict[str, Kind] = {
    k.name: k for k in (JOB, POD, SECRET, CONFIG_MAP, SERVICE, EVENT, NAMESPACE)
}
_BY_RESOURCE: dict[tuple[str, str, str], Kind] = {
    (k.group, k.version, k.plural): k for k in KINDS.values()
}


def kind_named(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"the fake does not serve kind {name!r}") from None


def kind_for(group: str, version: str, plural: str) -> Kind | None:
    return _BY_RESOURCE.get((group, version, plural))
