"""Registry rules of Secrets, Services and Namespaces, and the table of every kind's rules
(ConfigMaps' are in configmaps.py, Jobs' and Pods' in workloads.py)."""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
from collections.abc import Callable
from typing import Any

from . import errors as e
from .configmaps import ConfigMapStrategy
from .errors import FieldError
from .kinds import CONFIG_MAP, EVENT, JOB, NAMESPACE, POD, SECRET, SERVICE, Kind
from .storage import Record
from .strategy import Strategy
from .validation import config_key_errors
from .workloads import JobStrategy, PodStrategy

JSON = dict[str, Any]

SECRET_MAX_BYTES = 1024 * 1024


class SecretStrategy(Strategy):
    def default(self, obj: JSON) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def validate(self, obj: JSON) -> list[FieldError]:
        errors = super().validate(obj)
        total = 0
        for key, value in (obj.get("data") or {}).items():
            errors += [e.invalid_value("data", key, m) for m in config_key_errors(key)]
            total += len(decode_secret_value(value, key))
        if total > SECRET_MAX_BYTES:
            errors.append(e.too_long("data", SECRET_MAX_BYTES))
        return errors

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        errors: list[FieldError] = []
        if new.get("type") != old.get("type"):
            errors.append(e.immutable("type", new.get("type")))
        if old.get("immutable"):
            detail = "field is immutable when `immutable` is set"
            if new.get("data") != old.get("data"):
                errors.append(e.forbidden("data", detail))
            if not new.get("immutable"):
                errors.append(e.forbidden("immutable", detail))
        return errors


def decode_secret_value(value: Any, key: str) -> bytes:
    """Decode one `data` value; Go decodes []byte while reading JSON, so bad base64 is a 400."""
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise e.bad_request(
            f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in '
            f"data[{key!r}]: {exc}"
        ) from exc


class ClusterIPs:
    """Hands out Service cluster IPs from 10.96.0.0/12, like the service CIDR of kubeadm."""

    def __init__(self) -> None:
        self._network = ipaddress.ip_network("10.96.0.0/12")
        self._next = 10  # skip the API server's and DNS' well-known addresses
        self._used: set[str] = set()

    def allocate(self) -> str:
        while True:
            address = str(self._network[self._next])
            self._next = self._next + 1 if self._next + 2 < self._network.num_addresses else 10
            if address not in self._used:
                self._used.add(address)
                return address

    def release(self, address: str | None) -> None:
        self._used.discard(address or "")


class ServiceStrategy(Strategy):
    def __init__(self, kind: Kind, ips: ClusterIPs) -> None:
        super().__init__(kind)
        self.ips = ips

    def prepare_for_create(self, obj: JSON) -> list[FieldError]:
        obj["status"] = {"loadBalancer": {}}
        spec = obj.setdefault("spec", {})
        if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP"):
            spec["clusterIP"] = self.ips.allocate()
            spec["clusterIPs"] = [spec["clusterIP"]]
        return []

    def default(self, obj: JSON) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    def validate(self, obj: JSON) -> list[FieldError]:
        errors = super().validate(obj)
        spec = obj["spec"]
        types = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
        if spec["type"] not in types:
            errors.append(e.not_supported("spec.type", spec["type"], types))
        ports = spec.get("ports") or []
        if not ports and spec.get("clusterIP") != "None" and spec["type"] != "ExternalName":
            errors.append(e.required("spec.ports"))
        for i, port in enumerate(ports):
            number = port.get("port")
            if not isinstance(number, int) or not 0 < number < 65536:
                errors.append(
                    e.invalid_value(
                        f"spec.ports[{i}].port", number, "must be between 1 and 65535, inclusive"
                    )
                )
            if len(ports) > 1 and not port.get("name"):
                errors.append(e.required(f"spec.ports[{i}].name"))
        return errors

    def prepare_for_update(self, new: JSON, old: Record, subresource: str | None) -> JSON:
        spec = new.setdefault("spec", {})
        old_spec = old.obj.get("spec", {})
        for field in ("clusterIP", "clusterIPs"):
            if not spec.get(field) and field in old_spec:
                spec[field] = copy.deepcopy(old_spec[field])
        new["status"] = copy.deepcopy(old.obj.get("status", {}))
        return new

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        before, after = old["spec"].get("clusterIP"), new["spec"].get("clusterIP")
        if before != after:
            return [e.invalid_value("spec.clusterIPs[0]", after, "may not change once set")]
        return []

    def removed(self, obj: JSON) -> None:
        self.ips.release((obj.get("spec") or {}).get("clusterIP"))


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: JSON) -> list[FieldError]:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        return []

    def default(self, obj: JSON) -> None:
        metadata = obj.setdefault("metadata", {})
        if metadata.get("name"):
            labels = metadata.setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = metadata["name"]


def strategies() -> dict[str, Strategy]:
    ips = ClusterIPs()
    table: dict[str, Callable[[], Strategy]] = {
        JOB.name: lambda: JobStrategy(JOB),
        POD.name: lambda: PodStrategy(POD),
        SECRET.name: lambda: SecretStrategy(SECRET),
        CONFIG_MAP.name: lambda: ConfigMapStrategy(CONFIG_MAP),
        SERVICE.name: lambda: ServiceStrategy(SERVICE, ips),
        EVENT.name: lambda: Strategy(EVENT),
        NAMESPACE.name: lambda: NamespaceStrategy(NAMESPACE),
    }
    return {name: make() for name, make in table.items()}
