"""Wire models: request and response bodies of the v1 API, by resource. Their names, field names
and types are Radix's swagger definitions; `swagger.json` is generated from these classes."""

from scheduler.models.batches import *  # noqa: F403
from scheduler.models.events import *  # noqa: F403
from scheduler.models.jobs import *  # noqa: F403
from scheduler.models.status import *  # noqa: F403
