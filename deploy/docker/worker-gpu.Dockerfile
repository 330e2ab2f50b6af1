# syntax=docker/dockerfile:1
# patchcert GPU worker: onnxruntime-node's bundled WebGPU provider on the NVIDIA Vulkan driver.
#
# Why this route: the WebGPU provider ships inside onnxruntime-node's npm package (nothing is
# downloaded at install time), runs the same ONNX models as the CPU workers, is tested in CI on a
# software Vulkan device (lavapipe), checks itself against the CPU provider at load, and builds the
# ablations on the GPU from decoded images (docs/imagenet-scale.md). The CUDA provider needs a
# separate CUDA 12 + cuDNN 9 download at install time (onnxruntime-node-install=cuda12), and
# tfjs-node-gpu needs CUDA 11.x + cuDNN 8; neither runs in CI. To build a CUDA-provider image
# instead: a CUDA 12 cuDNN 9 base image, `npm rebuild onnxruntime-node --onnxruntime-node-install=cuda12`,
# and PATCHCERT_BACKEND=cuda.
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t patchcert:gpu .
#   docker run --rm --gpus all -e NATS_URL=... -e NATS_USER=worker -e NATS_PASSWORD=... \
#     -v /datasets:/data:ro patchcert:gpu worker --concurrency 2
#
# The NVIDIA container toolkit mounts the driver's Vulkan ICD only with the "graphics" capability
# (set below). One worker per GPU: one container per device (NVIDIA_VISIBLE_DEVICES / a Kubernetes
# nvidia.com/gpu: 1 limit); the WebGPU provider is driven from one thread per process.

ARG BASE_IMAGE=node:20-bookworm-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 make g++ ca-certificates >/dev/null \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# .npmrc skips onnxruntime-node's CUDA download: the WebGPU provider is in the package itself
# (--ignore-scripts: the package's own `prepare` would compile before the sources are here)
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild
COPY tsconfig.json index.ts ./
COPY core core
COPY proto proto
COPY outputs outputs
COPY cluster cluster
COPY worker worker
COPY coordinator coordinator
COPY pipeline pipeline
COPY cli cli
COPY bin bin
COPY models models
RUN npx tsc -p tsconfig.json --rootDir . --outDir dist \
  && npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM ${BASE_IMAGE}
# libvulkan1: the Vulkan loader Dawn opens; python3-minimal: the adapter probe (worker/backends/webgpu-adapter.ts)
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libvulkan1 python3-minimal >/dev/null \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PATCHCERT_BACKEND=webgpu \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
RUN groupadd -r patchcert && useradd -r -g patchcert -d /app patchcert \
  && mkdir -p /cache && chown patchcert:patchcert /cache
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/bin bin
COPY --from=build /app/proto proto
COPY --from=build /app/models models
USER patchcert
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/patchcert.js"]
CMD ["worker", "--backend", "webgpu", "--concurrency", "2", "--model-cache", "/cache"]
