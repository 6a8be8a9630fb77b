"""job-scheduler: a Kubernetes-native job-scheduler sidecar, wire-compatible with Radix's."""

__version__ = "0.1.0"
