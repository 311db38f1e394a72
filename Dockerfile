# One image for the API and every worker profile. GPU hosts build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 to get CUDA wheels.
FROM python:3.11-slim-bookworm
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE
# git (and ssh for ssh:// remotes) clones git sources in the ingest worker.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 quarry
# The data folder (scratch: clones, extracted archives, metrics files); a volume mounted
# here takes this folder's owner, so the non-root user can write it either way.
RUN mkdir -p /var/lib/quarry /var/log/quarry && chown quarry:quarry /var/lib/quarry /var/log/quarry
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY pipeline ./pipeline
COPY tasks ./tasks
COPY wiring ./wiring
COPY workers ./workers
COPY devstack ./devstack
COPY api ./api
COPY cli ./cli
COPY bench ./bench
COPY migrations ./migrations
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install '.[server]'
# The API's query model, exported to ONNX at build, outside the data folder: the API
# runs it with onnxruntime and never imports torch, so it never exports.
ENV QUARRY_QUERY_MODEL_DIR=/opt/quarry/models
RUN quarry model export && chmod -R a+rX /opt/quarry
USER quarry
EXPOSE 8080
CMD ["uvicorn", "api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8080"]
