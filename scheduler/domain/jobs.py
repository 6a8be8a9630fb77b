"""The domain: create, read and delete this scheduler's jobs. It knows the Backend port and the
view, not HTTP and not Kubernetes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from scheduler.backends.base import (
    Asked,
    Backend,
    ExitCodeRule,
    JobRequest,
    NodeSpec,
    RuntimeSpec,
)
from scheduler.domain.payloads import PayloadRules
from scheduler.domain.stopping import Stopper
from scheduler.domain.view import JobView
from scheduler.errors import ConflictError, InvalidError, NotFoundError
from scheduler.models import (
    JobScheduleDescription,
    JobStatus,
    RadixJobComponentConfig,
    Status,
    success,
)
from scheduler.models.asked import AskedResources, JobAsked
from scheduler.models.jobs import Node, Runtime
from scheduler.names import new_job_name
from scheduler.radixconfig import JobDefinition, replace_image_tag

log = logging.getLogger(__name__)

_NAME_ATTEMPTS = 3


def _node(definition: JobDefinition, config: RadixJobComponentConfig) -> NodeSpec | None:
    if config.node is not None and (config.node.gpu or config.node.gpu_count):
        return NodeSpec(gpu=config.node.gpu, gpu_count=config.node.gpu_count)
    return definition.node


def _runtime(definition: JobDefinition, config: RadixJobComponentConfig) -> RuntimeSpec | None:
    # A request's runtime replaces the configured one whole, as radix-operator does.
    if config.runtime is not None:
        if config.runtime.architecture or config.runtime.node_type:
            return RuntimeSpec(config.runtime.architecture, config.runtime.node_type)
        return None
    return definition.runtime


def build_request(
    definition: JobDefinition,
    description: JobScheduleDescription,
    name: str,
    *,
    batch_name: str | None = None,
    batch_id: str | None = None,
    batch_index: int | None = None,
    schedule: str | None = None,
    start_after: datetime | None = None,
    waiting_timeout_seconds: int | None = None,
) -> JobRequest:
    """Merge the request's options over the job's configuration for this environment;
    `start_after` and `waiting_timeout_seconds` are its batch's, for a job without its own."""
    image = description.image or definition.image
    if description.image_tag_name:
        image = replace_image_tag(image, description.image_tag_name)
    resources = description.resources
    requests = {
        **definition.requests,
        **(resources.requests.root if resources and resources.requests else {}),
    }
    limits = {
        **definition.limits,
        **(resources.limits.root if resources and resources.limits else {}),
    }
    own = description.variables.root if description.variables else None
    # The configured map itself when the job has none of its own: a batch's jobs share one.
    variables = {**definition.variables, **own} if own else definition.variables
    payload: bytes | None = None
    if definition.payload_path is not None:
        payload = (description.payload or "").encode("utf-8")
    rules = tuple(
        ExitCodeRule(
            action=rule.action.value,
            operator=rule.on_exit_codes.operator.value,
            values=tuple(rule.on_exit_codes.values),
        )
        for rule in (description.failure_policy.rules if description.failure_policy else ())
    )
    return JobRequest(
        name=name,
        job_id=description.job_id,
        image=image,
        command=tuple(description.command)
        if description.command is not None
        else definition.command,
        args=tuple(description.args) if description.args is not None else definition.args,
        env=variables,
        ports=definition.ports,
        requests=requests,
        limits=limits,
        payload=payload,
        payload_path=definition.payload_path,
        time_limit_seconds=description.time_limit_seconds or definition.time_limit_seconds,
        backoff_limit=(
            description.backoff_limit
            if description.backoff_limit is not None
            else definition.backoff_limit
        ),
        run_as_user=definition.run_as_user,
        failure_rules=rules,
        node=_node(definition, description),
        runtime=_runtime(definition, description),
        batch_name=batch_name,
        batch_id=batch_id,
        batch_index=batch_index,
        schedule=schedule,
        start_after=description.start_after or start_after,
        waiting_timeout_seconds=(
            description.waiting_timeout_seconds
            or waiting_timeout_seconds
            or definition.waiting_timeout_seconds
        ),
    )


class JobService:
    def __init__(
        self,
        definition: JobDefinition,
        backend: Backend,
        view: JobView,
        *,
        payloads: PayloadRules | None = None,
        name_factory: Callable[[str], str] = new_job_name,
    ) -> None:
        self.definition = definition
        self.payloads = payloads or PayloadRules.of(definition)
        self._backend = backend
        self._view = view
        self._new_name = name_factory
        self._stopper = Stopper(backend, view)

    async def create(
        self,
        description: JobScheduleDescription,
        name: str | None = None,
        schedule: str | None = None,
    ) -> JobStatus:
        """With a fixed `name` (a schedule's run, an Idempotency-Key's claim) a job of that name
        that exists already is a ConflictError: no other name is drawn."""
        self.payloads.check([("payload", description.payload)])
        attempts = 1 if name is not None else _NAME_ATTEMPTS
        for attempt in range(1, attempts + 1):
            job_name = name or self._new_name(self.definition.name)
            try:
                record = await self._backend.create_job(
                    build_request(self.definition, description, job_name, schedule=schedule)
                )
                break
            except ConflictError:
                # The random suffix collided with an existing job: draw another name.
                if attempt == attempts:
                    raise
        self._view.upsert_job(record)
        log.info("created job %s", record.name, extra={"job_name": record.name})
        status = self._view.status(record.name)
        assert status is not None, "a job just put in the view has a status"
        return status

    def list_json(self) -> bytes:
        self._view.require_synced()
        return self._view.list_json()

    def get_json(self, name: str) -> bytes:
        """A single job, or a job of a batch, by its full name."""
        found = self._view.status_json(name)
        if found is None:
            self._view.require_synced()
            raise NotFoundError(f"job {name} not found")
        return found

    async def asked(self, name: str) -> JobAsked:
        """What was asked of a job (single or of a batch, by its full name), as its backend keeps
        it with the job: never its variables' values or its payload."""
        self._view.require_status(name)  # this scheduler's jobs only, not a namesake's
        return _asked_model(await self._backend.asked(name))

    async def stop(self, name: str) -> Status:
        await self._stopper.stop(self._view.require_status(name))
        return success(f"job {name} was successfully stopped")

    async def stop_all(self) -> Status:
        self._view.require_synced()
        await self._stopper.stop_all(self._view.single_statuses())
        return success("all jobs were successfully stopped")

    async def delete(self, name: str) -> Status:
        """Delete a single job; a batch's jobs go with their batch."""
        record = self._view.job(name)
        if record is None:
            self._view.require_synced()
            raise NotFoundError(f"job {name} not found")
        if record.batch_name is not None:
            raise InvalidError(
                f"{name} is invalid: not a single job; it belongs to batch {record.batch_name}, "
                "delete the batch instead"
            )
        try:
            await self._backend.delete_job(name, record.uid)
        except NotFoundError:
            self._view.forget_job(name)
            raise NotFoundError(f"job {name} not found") from None
        self._view.forget_job(name)
        log.info("deleted job %s", name, extra={"job_name": name})
        return success(f"job {name} successfully deleted")

    async def prune(self, name: str) -> None:
        """Delete a finished job for the history limit; NotFoundError if it is already gone."""
        await self.delete(name)


def _asked_model(asked: Asked) -> JobAsked:
    node, runtime = asked.node, asked.runtime
    return JobAsked(
        image=asked.image,
        # An empty list clears the configured one, as no list does: the image's own runs.
        command=list(asked.command) if asked.command else None,
        args=list(asked.args) if asked.args else None,
        resources=AskedResources(requests=dict(asked.requests), limits=dict(asked.limits)),
        # As kept with the job, not checked again as a request would be.
        node=None if node is None else Node.model_construct(gpu=node.gpu, gpu_count=node.gpu_count),
        runtime=None
        if runtime is None
        else Runtime.model_construct(
            architecture=runtime.architecture, node_type=runtime.node_type
        ),
        time_limit_seconds=asked.time_limit_seconds,
        backoff_limit=asked.backoff_limit,
        start_after=None if asked.start_after is None else _whole_second_up(asked.start_after),
        waiting_timeout_seconds=asked.waiting_timeout_seconds,
        schedule=asked.schedule,
        variable_names=list(asked.variable_names),
        has_payload=asked.has_payload,
        batch_name=asked.batch_name,
        job_id=asked.job_id,
    )


def _whole_second_up(moment: datetime) -> datetime:
    """To the second, rounded up as the job's start is (times go out in whole seconds)."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)
