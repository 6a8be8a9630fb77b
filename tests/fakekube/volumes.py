"""A pod's volumes on the fake node, as its containers see them: Secrets (`secret`, and `projected`
with secret sources) read from the store, and each `emptyDir` a directory of the pod's own on
this machine, removed with the pod. Containers that run for real (see processes.py) get their
mounts as directories on disk."""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
# A Secret (by name) as the store holds it, or None.
SecretLookup = Callable[[str], JSON | None]


class PodDirs:
    """Each pod's directory on this machine (its emptyDirs, materialized mounts, termination
    logs), made when first needed and removed with the pod."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._pods: dict[str, Path] = {}

    def of(self, uid: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fakekube-node-"))
        if uid not in self._pods:
            self._pods[uid] = self._root / uid
            self._pods[uid].mkdir()
        return self._pods[uid]

    def existing(self, uid: str) -> Path | None:
        return self._pods.get(uid)

    def remove(self, uid: str) -> None:
        path = self._pods.pop(uid, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def remove_all(self) -> None:
        self._pods.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def secret_files(volume: JSON, secret: SecretLookup) -> dict[str, bytes] | None:
    """The files (relative path -> content) of a `secret` or `projected` volume; None for any
    other kind. Keys a Secret lacks, or Secrets that are missing, give no file."""
    sources: list[JSON]
    if isinstance(volume.get("secret"), dict):
        source = volume["secret"]
        sources = [{"name": source.get("secretName"), "items": source.get("items")}]
    elif isinstance(volume.get("projected"), dict):
        sources = [
            s["secret"]
            for s in volume["projected"].get("sources") or ()
            if isinstance(s.get("secret"), dict)
        ]
    else:
        return None
    files: dict[str, bytes] = {}
    for source in sources:
        found = secret(str(source.get("name")))
        data = (found or {}).get("data") or {}
        items = source.get("items")
        wanted = {item["path"]: item["key"] for item in items} if items else {k: k for k in data}
        for path, key in wanted.items():
            if key in data:
                files[path] = base64.b64decode(data[key])
    return files


def missing_secrets(spec: JSON, secret: SecretLookup) -> list[tuple[str, str]]:
    """(volume, Secret) of each Secret a volume needs that is not there (the kubelet's
    FailedMount)."""
    missing = []
    for volume in spec.get("volumes") or ():
        if isinstance(volume.get("secret"), dict):
            needed = [] if volume["secret"].get("optional") else [volume["secret"]["secretName"]]
        elif isinstance(volume.get("projected"), dict):
            needed = [
                s["secret"]["name"]
                for s in volume["projected"].get("sources") or ()
                if isinstance(s.get("secret"), dict) and not s["secret"].get("optional")
            ]
        else:
            needed = []
        missing += [(volume["name"], name) for name in needed if secret(name) is None]
    return missing


def read_file(
    spec: JSON, container: JSON, path: str, secret: SecretLookup, pod_dir: Path | None
) -> bytes | None:
    """The content of `path` as `container` sees it through its volume mounts; None when no
    mount holds such a file."""
    volumes = {volume.get("name"): volume for volume in spec.get("volumes") or ()}
    for mount in container.get("volumeMounts") or ():
        prefix = str(mount.get("mountPath", "")).rstrip("/") + "/"
        volume = volumes.get(mount.get("name"))
        if volume is None or not path.startswith(prefix):
            continue
        relative = path.removeprefix(prefix)
        files = secret_files(volume, secret)
        if files is not None:
            if relative in files:
                return files[relative]
        elif "emptyDir" in volume and pod_dir is not None:
            host = pod_dir / "volumes" / str(volume["name"]) / relative
            if host.is_file():
                return host.read_bytes()
    return None


def materialize(spec: JSON, container: JSON, secret: SecretLookup, pod_dir: Path) -> dict[str, str]:
    """The container's mounts as directories under `pod_dir` (a Secret's files written out, an
    emptyDir shared by the pod's containers); mount path -> directory."""
    volumes = {volume.get("name"): volume for volume in spec.get("volumes") or ()}
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or ():
        volume = volumes.get(mount.get("name"))
        if volume is None:
            continue
        host = pod_dir / "volumes" / str(volume["name"])
        host.mkdir(parents=True, exist_ok=True)
        for relative, content in (secret_files(volume, secret) or {}).items():
            (host / relative).parent.mkdir(parents=True, exist_ok=True)
            (host / relative).write_bytes(content)
        mounts[str(mount["mountPath"]).rstrip("/")] = str(host)
    return mounts
