"""A fake Kubernetes API server over real HTTP, with a Job controller, a garbage collector and
a node, for testing code that uses the official `kubernetes` client. See fake.py."""

from .audit import AuditEntry
from .fake import FakeKube
from .faults import Faults

__all__ = ["AuditEntry", "FakeKube", "Faults"]
