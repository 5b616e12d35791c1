# Retrace collector + UI image (the runner's sandbox needs runsc on the host; not used here).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first (cached layer), pinned by constraints.txt; then the code.
COPY pyproject.toml constraints.txt README.md ./
COPY retrace ./retrace
COPY schemas ./schemas
COPY collector ./collector
COPY runner ./runner
COPY replay ./replay
COPY ui ./ui
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 10001 retrace \
    && mkdir -p /data && chown retrace /data

USER retrace
ENV RETRACE_DATA_DIR=/data
EXPOSE 4317 4318 8501
# The compose file picks the command per service; alone, the image runs the collector.
CMD ["retrace", "serve", "--host", "0.0.0.0", "--port", "4318", "--grpc-port", "4317", "--data-dir", "/data"]
