"""An attempt's log on Kubernetes: its pod's container log through the API server (the Role's
`pods/log` get), with the API's refusals said in the scheduler's words."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from scheduler.backends.base import Identity
from scheduler.backends.kubernetes.client import KubeApi
from scheduler.backends.kubernetes.manifests import CONTAINER_NAME_FALLBACK
from scheduler.errors import ConflictError, InvalidError, NotFoundError


async def reading(
    api: KubeApi,
    identity: Identity,
    job: str,
    pod: str,
    *,
    follow: bool,
    tail: int | None,
    timestamps: bool,
) -> AsyncGenerator[bytes, None]:
    # The job's one container is named as in its manifest.
    container = identity.component or CONTAINER_NAME_FALLBACK
    chunks = api.pod_log(pod, container, follow=follow, tail_lines=tail, timestamps=timestamps)
    try:
        opened = await anext(chunks)
    except NotFoundError as exc:
        raise NotFoundError(
            f"the log of pod {pod} of job {job} is gone with its pod: Kubernetes deletes the "
            "pods of stopped, restarted and deleted jobs"
        ) from exc
    except InvalidError as exc:
        # The API server answers 400 while the container is waiting to start.
        raise ConflictError(f"the log of pod {pod} of job {job} cannot be read yet: {exc}") from exc
    try:
        yield opened
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()
