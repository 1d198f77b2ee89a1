FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/agent-session-exporter --create-home exporter

USER 10001
WORKDIR /var/lib/agent-session-exporter
EXPOSE 9817
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9817/healthz', timeout=4).status != 200)"
ENTRYPOINT ["agent-session-exporter"]
CMD ["--demo"]
