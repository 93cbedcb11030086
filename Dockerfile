# The image every task of a bench pipeline runs (docs/pipelines.md): bench with JAX, TensorFlow,
# LiteRT, NVML, KServe (`bench serve`, to deploy what was measured) and the Kubeflow Pipelines
# SDK, `bench` as entry point (KFP tasks set their own command).
#   docker build -t bench:cpu .                              # CPU: JAX's and TensorFlow's CPU builds
#   docker build --build-arg JAX_EXTRA=cuda12 -t bench:cuda12 .   # NVIDIA GPUs (or cuda13)
#   docker build --build-arg JAX_EXTRA=tpu -t bench:tpu .         # Cloud TPU VMs / GKE TPU nodes
FROM python:3.11-slim

# Empty: JAX's CPU build. cuda12 / cuda13: JAX's CUDA build from pip wheels (no CUDA toolkit in
# the image: the node's driver comes from the GPU device plugin). tpu: JAX with libtpu.
ARG JAX_EXTRA=""

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/bench
COPY pyproject.toml README.md ./
COPY bench ./bench
COPY models ./models
COPY scenarios ./scenarios
RUN pip install '.[jax,tf,litert,gpu,pipelines,serving]' \
    && if [ -n "$JAX_EXTRA" ]; then pip install "jax[${JAX_EXTRA}]"; fi \
    && bench --help > /dev/null

# Run folders go under the working directory unless --results-dir says otherwise.
WORKDIR /work
ENTRYPOINT ["bench"]
