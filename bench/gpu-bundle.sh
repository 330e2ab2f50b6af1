#!/usr/bin/env bash
# Packs what bench/gpu.sh needs on a GPU machine that has no Node (the lent H200) into .gpu-carry/
# (git-ignored; name it in the device run's carry): the node binary, the built dist/ with the
# production node_modules it loads (onnxruntime-node's linux-x64 files only, no TF.js), the
# nats-server binary, libvulkan1's .deb and the CIFAR-10 JPEG test archive. Prints the sizes: with
# the working tree everything must stay under 64 MiB, so the device run also leaves the ResNet-18
# models out of the tree (bench/gpu.sh exports a random-init ResNet-18 on the device instead).
#   bash bench/gpu-bundle.sh && du -sh .gpu-carry
set -euo pipefail
cd "$(dirname "$0")/.."
C=.gpu-carry
rm -rf "$C" && mkdir -p "$C"
npx tsc -p tsconfig.json
xz -T0 -6 -c "$(command -v node)" > "$C/node.xz"
xz -T0 -6 -c "$(command -v nats-server)" > "$C/nats-server.xz"
(cd "$C" && apt-get download -qq libvulkan1 2>&1 | grep -v unsandboxed || true)
TB=${TARBALLS:-../shared/datasets/cifar10-jpeg}; [ -d "$TB" ] || TB=../../shared/datasets/cifar10-jpeg
[ -f "$TB/test.tar.gz" ] && cp "$TB/test.tar.gz" "$C/cifar10-test.tar.gz"
# production dependencies as the built code imports them (TF.js backends stay off: dynamic imports)
mods=(onnxruntime-node onnxruntime-common protobufjs piscina sharp @img nats yaml)
extra=$(node -e '
  const seen = new Set(); const q = process.argv.slice(1);
  while (q.length) { const n = q.pop(); if (seen.has(n)) continue; seen.add(n);
    try { const p = require("./node_modules/" + n + "/package.json"); for (const d of Object.keys({...p.dependencies, ...p.optionalDependencies})) q.push(d); } catch {} }
  console.log([...seen].filter((n) => require("fs").existsSync("node_modules/" + n)).join(" "))' "${mods[@]}")
# shellcheck disable=SC2086
tar -c --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' --exclude='*.map' --exclude='*.d.ts' \
  dist package.json $(for m in $extra; do echo "node_modules/$m"; done) | xz -T0 -6 > "$C/runtime.tar.xz"
ls -la "$C"
du -cb "$C"/* | tail -1 | awk '{printf "carry: %.1f MiB\n", $1/1048576}'
