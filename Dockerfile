FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY agent_session_exporter ./agent_session_exporter
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/agent-session-exporter --create-home exporter

USER 10001
WORKDIR /var/lib/agent-session-exporter
EXPOSE 9817
# --healthcheck asks /healthz at the address the exporter really listens on (whatever the config says).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD ["agent-session-exporter", "--healthcheck"]
ENTRYPOINT ["agent-session-exporter"]
CMD ["--demo"]
