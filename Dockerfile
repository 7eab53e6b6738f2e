# syntax=docker/dockerfile:1
# SpectraMonitor: one image for the operator, probe, alerter, web and migrations; entry point `spectra`.
#
#   docker build -t ghcr.io/spectramonitor/spectra:0.4.0 .
#   docker build --target browser -t ghcr.io/spectramonitor/spectra:0.4.0-browser .
#
# Stages: builder (wheels) -> base (runtime user, env) -> browser (+ Chromium, Playwright) -> runtime (default).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: wheels for spectramonitor and every dependency (incl. the browser extra) ---------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY spectra ./spectra
RUN pip wheel --wheel-dir /wheels ".[browser]"

# ---- base: what every variant shares ------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp
# The same uid/gid the chart runs as (runAsUser 10001); the root filesystem is read-only there, /tmp is not.
RUN groupadd --system --gid 10001 spectra \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin spectra
EXPOSE 8080 8081 8082 8083

# ---- browser: Debian's Chromium + Playwright for `type: browser` monitors ----------------------------
FROM base AS browser
RUN apt-get update \
    && apt-get install --yes --no-install-recommends chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "spectramonitor[browser]" \
    && spectra --version
ENV SPECTRA_CHROMIUM=/usr/bin/chromium
USER 10001:10001
ENTRYPOINT ["spectra"]
CMD ["--help"]

# ---- runtime (default target): operator, probe, alerter, web, db upgrade -----------------------------
FROM base AS runtime
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels spectramonitor \
    && spectra --version
USER 10001:10001
ENTRYPOINT ["spectra"]
CMD ["--help"]
