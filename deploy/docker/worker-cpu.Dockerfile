# syntax=docker/dockerfile:1
# patchcert on CPU: worker, coordinator, status/cancel (one image, the command picks the role).
# Backends: onnx (onnxruntime-node, CPU threads) and tfjs-wasm; tfjs-node is optional (add
# --build-arg WITH_TFJS_NODE=1: it downloads libtensorflow while building).
#
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t patchcert:cpu .
#   docker run --rm -e NATS_URL=nats://nats:4222 -e NATS_USER=worker -e NATS_PASSWORD=... \
#     -v /datasets:/data:ro patchcert:cpu worker --concurrency 2

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
ARG WITH_TFJS_NODE=0
WORKDIR /app
# native modules that have no prebuilt binary for this platform need a compiler
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 make g++ ca-certificates >/dev/null \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: the package's own `prepare` would compile before the sources are here;
# `npm rebuild` then runs the dependencies' install scripts (sharp, onnxruntime-node)
RUN if [ "$WITH_TFJS_NODE" = "1" ]; then \
      npm ci --no-audit --no-fund --ignore-scripts && npm rebuild && npm uninstall --no-save @tensorflow/tfjs-node-gpu; \
    else \
      npm ci --no-audit --no-fund --omit=optional --ignore-scripts && npm rebuild; \
    fi
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

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    PATCHCERT_BACKEND=onnx
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/bin bin
COPY --from=build /app/proto proto
COPY --from=build /app/models models
# model files fetched from the PATCHCERT_MODELS object store are cached here
RUN mkdir -p /cache && chown node:node /cache
USER node
# SIGTERM (docker stop, Kubernetes) drains the worker: give it the grace period to finish units
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/bin/patchcert.js"]
CMD ["worker", "--model-cache", "/cache"]
