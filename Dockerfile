# syntax=docker/dockerfile:1
# The job-scheduler image: wheels are built in one stage and installed, without build tools or
# caches, into a slim runtime that runs as a fixed non-root user on a read-only root filesystem.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scheduler ./scheduler
# The project's wheel plus a wheel of every dependency declared in pyproject.toml.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# The wheels are bind-mounted, so they do not end up in a layer; the index is never consulted.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl \
    && groupadd --system --gid 10001 scheduler \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin scheduler
# Nothing writes outside /tmp, which the chart mounts as an emptyDir.
WORKDIR /tmp
EXPOSE 8000
USER 10001:10001
ENTRYPOINT ["job-scheduler"]
