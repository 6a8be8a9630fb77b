"""Generic validation rules of the API server: names, labels, annotations, pod specs.

Messages are apimachinery's, so a 422 from the fake reads like one from a cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import FieldError, invalid_value, required, too_long
from .kinds import Kind

JSON = dict[str, Any]

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_1123_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123',"
    " regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value', "
    " or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',"
    "  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
TOTAL_ANNOTATION_BYTES = 256 * 1024


def subdomain_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 253:
        errors.append("must be no more than 253 characters")
    if not _SUBDOMAIN.fullmatch(value):
        errors.append(SUBDOMAIN_MESSAGE)
    return errors


def dns_label_errors(value: str, *, rfc1035: bool = False) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    pattern, message = (_LABEL_1123, LABEL_1123_MESSAGE)
    if rfc1035:
        pattern, message = _LABEL_1035, LABEL_1035_MESSAGE
    if not pattern.fullmatch(value):
        errors.append(message)
    return errors


def name_errors(kind: Kind, name: str) -> list[str]:
    if kind.name_rule == "dns1035":
        return dns_label_errors(name, rfc1035=True)
    if kind.name_rule == "label":
        return dns_label_errors(name)
    return subdomain_errors(name)


def label_key_errors(key: str) -> list[str]:
    prefix, slash, name = key.rpartition("/")
    errors = []
    if slash and not prefix:
        errors.append("prefix part must be non-empty")
    elif prefix:
        errors.extend(f"prefix part {e}" for e in subdomain_errors(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.fullmatch(name):
        errors.append(QUALIFIED_NAME_MESSAGE)
    return errors


def label_value_errors(value: str) -> list[str]:
    errors = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if not _LABEL_VALUE.fullmatch(value):
        errors.append(LABEL_VALUE_MESSAGE)
    return errors


def config_key_errors(key: str) -> list[str]:
    """IsConfigMapKey, for ConfigMap and Secret keys: they become file names in a volume."""
    errors = []
    if len(key) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(key):
        errors.append(CONFIG_KEY_MESSAGE)
    if key in (".", ".."):
        errors.append(f"must not be '{key}'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def labels_errors(labels: Any, field: str) -> list[FieldError]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [invalid_value(field, labels, "must be a map of strings")]
    errors: list[FieldError] = []
    for key, value in labels.items():
        errors += [invalid_value(field, key, e) for e in label_key_errors(key)]
        if not isinstance(value, str):
            errors.append(invalid_value(f"{field}", value, "must be a string"))
            continue
        errors += [invalid_value(field, value, e) for e in label_value_errors(value)]
    return errors


def annotations_errors(annotations: Any, field: str) -> list[FieldError]:
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [invalid_value(field, annotations, "must be a map of strings")]
    errors: list[FieldError] = []
    for key in annotations:
        errors += [invalid_value(field, key, e) for e in label_key_errors(key)]
    size = sum(len(k) + len(str(v)) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_BYTES:
        errors.append(too_long(field, TOTAL_ANNOTATION_BYTES))
    return errors


def metadata_errors(kind: Kind, metadata: JSON) -> list[FieldError]:
    errors: list[FieldError] = []
    name = metadata.get("name")
    if not name:
        errors.append(required("metadata.name", "name or generateName is required"))
    else:
        errors += [invalid_value("metadata.name", name, e) for e in name_errors(kind, name)]
    errors += labels_errors(metadata.get("labels"), "metadata.labels")
    errors += annotations_errors(metadata.get("annotations"), "metadata.annotations")
    for i, ref in enumerate(metadata.get("ownerReferences") or []):
        for key in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(key):
                errors.append(required(f"metadata.ownerReferences[{i}].{key}"))
    return errors


def container_errors(
    containers: Any, field: str, seen: set[str] | None = None, optional: bool = False
) -> list[FieldError]:
    """`seen`: the names taken already (init containers' and containers' share one space)."""
    if not containers:
        return [] if optional else [required(field)]
    errors: list[FieldError] = []
    seen = set() if seen is None else seen
    for i, container in enumerate(containers):
        path = f"{field}[{i}]"
        name = container.get("name")
        if not name:
            errors.append(required(f"{path}.name"))
        else:
            errors += [invalid_value(f"{path}.name", name, e) for e in dns_label_errors(name)]
            if name in seen:
                errors.append(
                    FieldError(
                        f"{path}.name",
                        "FieldValueDuplicate",
                        f"Duplicate value: {json.dumps(name)}",
                    )
                )
            seen.add(name)
        if not container.get("image"):
            errors.append(required(f"{path}.image"))
    return errors


def pod_spec_errors(spec: Any, field: str) -> list[FieldError]:
    if not isinstance(spec, Mapping):
        return [required(field)]
    names: set[str] = set()
    errors = container_errors(spec.get("containers"), f"{field}.containers", names)
    errors += container_errors(
        spec.get("initContainers"), f"{field}.initContainers", names, optional=True
    )
    for i, volume in enumerate(spec.get("volumes") or []):
        if not volume.get("name"):
            errors.append(required(f"{field}.volumes[{i}].name"))
        secret = volume.get("secret")
        if secret is not None and not secret.get("secretName"):
            errors.append(required(f"{field}.volumes[{i}].secret.secretName"))
    return errors
