# syntax=docker/dockerfile:1
# patchcert GPU worker: @tensorflow/tfjs-node-gpu on CUDA.
#
# tfjs-node-gpu 4.22 loads libtensorflow 2.9.1, built for CUDA 11.2 and cuDNN 8.1; it runs on any
# CUDA 11.x runtime >= 11.2 (minor-version compatibility) with cuDNN 8, and needs an NVIDIA
# driver >= 450.80 on the host (the NVIDIA container toolkit mounts it). Models must carry the
# tfjs format (training/export.py writes it); jobs choose it with --backend tfjs-node-gpu.
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t patchcert:gpu .
#   docker run --rm --gpus all -e NATS_URL=... -e NATS_USER=worker -e NATS_PASSWORD=... \
#     -v /datasets:/data:ro patchcert:gpu worker --concurrency 2
#
# One worker per GPU: run one container per device (NVIDIA_VISIBLE_DEVICES / a Kubernetes
# nvidia.com/gpu: 1 limit). Concurrency 2 keeps the GPU busy while the next unit is preprocessed.

ARG CUDA_IMAGE=nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS node

FROM ${CUDA_IMAGE} AS build
# the official Node.js build (linked against an old glibc, runs on Ubuntu 22.04)
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && ln -s /usr/local/lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 make g++ ca-certificates curl >/dev/null \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# optional dependencies included: @tensorflow/tfjs-node-gpu downloads its GPU libtensorflow here;
# the CPU-only tfjs-node is dropped so `auto` cannot pick it by mistake
# (--ignore-scripts: the package's own `prepare` would compile before the sources are here;
# `npm rebuild` then runs the dependencies' install scripts)
RUN npm ci --no-audit --no-fund --ignore-scripts && npm rebuild \
  && npm uninstall --no-save @tensorflow/tfjs-node \
  && node -e "require('@tensorflow/tfjs-node-gpu/package.json')"
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
  && npm prune --omit=dev --no-audit --no-fund

FROM ${CUDA_IMAGE}
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    PATCHCERT_BACKEND=tfjs-node-gpu \
    TF_CPP_MIN_LOG_LEVEL=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
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
CMD ["worker", "--backend", "tfjs-node-gpu", "--concurrency", "2", "--model-cache", "/cache"]
