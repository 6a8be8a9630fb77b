"""Discovery and probes: /version, /healthz and friends, and the API group and resource lists
clients read to learn what the server serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors as e
from .kinds import KINDS
from .metrics import GROUP, METRICS, VERSION
from .metrics import resources as metrics_resources

JSON = dict[str, Any]

VERSION_INFO: JSON = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}
SUBRESOURCES = {"status": frozenset({"Job", "Pod"}), "log": frozenset({"Pod"})}


async def version(request: web.Request) -> web.Response:
    return web.json_response(VERSION_INFO)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def api_versions(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
            ],
        }
    )


def _metrics_served(request: web.Request) -> bool:
    return request.app[METRICS].served


async def api_groups(request: web.Request) -> web.Response:
    versions = {k.group: "v1" for k in KINDS.values() if k.group}
    if _metrics_served(request):
        versions[GROUP] = VERSION  # what metrics-server's APIService adds
    return web.json_response(
        {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": g,
                    "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                    "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                }
                for g, v in sorted(versions.items())
            ],
        }
    )


async def api_resources(request: web.Request) -> web.Response:
    group = request.match_info.get("group", "")
    version_name = request.match_info["version"]
    if (group, version_name) == (GROUP, VERSION) and _metrics_served(request):
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{GROUP}/{VERSION}",
                "resources": metrics_resources(),
            }
        )
    kinds = [k for k in KINDS.values() if k.group == group and k.version == version_name]
    if not kinds:
        raise e.not_found_path()
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    resources: list[JSON] = []
    for kind in kinds:
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.name.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.name,
                "verbs": verbs,
            }
        )
        for sub, owners in SUBRESOURCES.items():
            if kind.name in owners:
                resources.append(
                    {
                        "name": f"{kind.plural}/{sub}",
                        "singularName": "",
                        "namespaced": True,
                        "kind": kind.name,
                        "verbs": ["get"] if sub == "log" else ["get", "patch", "update"],
                    }
                )
    group_version = f"{group}/{version_name}" if group else version_name
    return web.json_response(
        {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }
    )
