# The exporter's image, built from the lock files: every Python package in it is an exact version
# whose hash pip checks, taken as a wheel (nothing is compiled). README: "Build and run the image".
#   docker build -t agent-session-exporter:0.1.0 .
# The base image's tag moves with Python's patch releases: for builds you can repeat, pin it by digest,
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:<digest> ...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: the locked build backend (requirements-build.lock) builds the package's wheel; the
# locked dependencies (requirements.lock) and that wheel go into a venv without pip.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --require-hashes --no-deps --only-binary :all: -r requirements-build.lock \
    && python -m venv --without-pip /opt/agent-session-exporter \
    && /opt/build/bin/pip --python /opt/agent-session-exporter/bin/python \
        install --require-hashes --no-deps --only-binary :all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY agent_session_exporter ./agent_session_exporter
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist . \
    && /opt/build/bin/pip --python /opt/agent-session-exporter/bin/python install --no-deps /dist/*.whl \
    && /opt/build/bin/pip --python /opt/agent-session-exporter/bin/python check

# Final stage: the base image and that venv; no build backend, wheel, pip cache or source.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/agent-session-exporter /opt/agent-session-exporter
ENV PATH=/opt/agent-session-exporter/bin:$PATH PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --home-dir /var/lib/agent-session-exporter --create-home exporter

USER 10001
WORKDIR /var/lib/agent-session-exporter
EXPOSE 9817
# --healthcheck asks /healthz at the address the exporter really listens on (whatever the config says).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["agent-session-exporter", "--healthcheck"]
ENTRYPOINT ["agent-session-exporter"]
# Mount your config here (state_path under /var/lib/agent-session-exporter, a volume); `--demo` instead
# runs the built-in simulators.
CMD ["--config.file", "/etc/agent-session-exporter/config.yaml"]
