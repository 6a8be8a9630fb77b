"""What a request is in Kubernetes terms (verb, group, resource, ...), and the audit record of
every request the fake answered."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResourcePath:
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> ResourcePath | None:
    """Split `/apis/batch/v1/namespaces/ns/jobs/x/status` like the API server's RequestInfo."""
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    # /api/v1/namespaces/{ns}/{resource}/..., but /api/v1/namespaces/{name}/status is the
    # Namespace's own subresource.
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return ResourcePath(group, version, rest[0], namespace, name, subresource)


def verb_for(method: str, path: ResourcePath | None, watch: bool) -> str:
    method = method.upper()
    if path is None:
        return method.lower()
    if method in ("GET", "HEAD"):
        if path.name is not None:
            return "get"
        return "watch" if watch else "list"
    if method == "DELETE":
        return "delete" if path.name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def is_watch(query_watch: str | None) -> bool:
    return (query_watch or "").lower() in ("true", "1")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    api_group: str  # "" for the core group
    resource: str  # jobs, pods, ...; "" for non-resource paths such as /version
    subresource: str | None
    namespace: str | None
    name: str | None
    status_code: int
    method: str = ""
    path: str = ""


def audit_entry(method: str, path: str, query_watch: str | None, status_code: int) -> AuditEntry:
    resource_path = parse_path(path)
    verb = verb_for(method, resource_path, is_watch(query_watch))
    if resource_path is None:
        return AuditEntry(verb, "", "", None, None, None, status_code, method, path)
    return AuditEntry(
        verb,
        resource_path.group,
        resource_path.resource,
        resource_path.subresource,
        resource_path.namespace,
        resource_path.name,
        status_code,
        method,
        path,
    )
