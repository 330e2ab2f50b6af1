#!/usr/bin/env bash
# The GPU benchmark in one command (issue 12): patchcert's webgpu backend beside PyTorch on the same
# GPU, for a CIFAR-10 ResNet-18 (column s=4, 32 ablations per image, N18 test images; 10,000 = all)
# and a ResNet-50 at 224x224 (column s=25, 224 ablations per image, N50 images), in <= 8 minutes on
# one H200:
#   1. raw forward passes/s of the backend (bench/backend-raw.js, host-built batches);
#   2. end-to-end certify ablations/s, one process (ablations built on the device);
#   3. PyTorch on the same GPU: the authors' fp32 loop and the best setting (bench/gpu_torch.py);
#   4. 2 and 4 worker processes sharing the GPU over a local nats-server (N18W images);
#   5. the GPU run's counts against the CPU provider's (NCPU18 / NCPU50 images).
# Results: $OUT/results.jsonl, one line per measurement, and $OUT/table.md (bench/gpu_table.py).
#
#   OUT=/tmp/gpu bash bench/gpu.sh                  # the H200 sizes
#   DRY=1 OUT=/tmp/gpu bash bench/gpu.sh            # tiny sizes, any Vulkan device (lavapipe)
#
# On a machine without Node (the H200), first pack .gpu-carry/ here with bench/gpu-bundle.sh and
# carry it: node, dist/ + node_modules, nats-server, libvulkan1 and the CIFAR-10 JPEG test set are
# unpacked from it. The ResNet-18 is the committed models/cifar10-column4 when the tree has it,
# else (the 64 MiB a device run may carry leave it out) a random-init ResNet-18 of the same
# architecture exported here; the ResNet-50 is always random-init. Speed does not depend on weights.
# Environment: OUT, DRY, BACKEND (default webgpu), N18, N50, N18W, NCPU18, NCPU50, R50_HW, TILE18 (images
# per backend call, x 32 ablations), UNIT (images per unit over NATS), STEP (seconds per step), PYTHON.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the output folder}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0))s] $*"; }
PY=${PYTHON:-python3}
BACKEND=${BACKEND:-webgpu}
RES=$OUT/results.jsonl
: > "$RES"
if [ -n "${DRY:-}" ]; then
  N18=${N18:-4} N50=${N50:-1} N18W=${N18W:-2} NCPU18=${NCPU18:-2} NCPU50=${NCPU50:-1} R50_HW=${R50_HW:-32} UNIT=${UNIT:-1} TILE18=${TILE18:-1} STEP=${STEP:-600}
  RAW18="--batches 8 --seconds 1 --warmup 1 --min-iter 1" RAW50="--batches 8 --seconds 1 --warmup 1 --min-iter 1"
  TORCH_BUDGET=20
else
  N18=${N18:-10000} N50=${N50:-64} N18W=${N18W:-2000} NCPU18=${NCPU18:-200} NCPU50=${NCPU50:-2} R50_HW=${R50_HW:-224} UNIT=${UNIT:-64} TILE18=${TILE18:-32} STEP=${STEP:-180}
  RAW18="--batches 256,1024 --seconds 3" RAW50="--batches 64,224 --seconds 3 --warmup 1"
  TORCH_BUDGET=25
fi
R50_S=$(( R50_HW * 25 / 224 )); [ "$R50_S" -ge 1 ] || R50_S=1
# one deadline for the whole command (TOTAL seconds, default 470: the 8 minutes less start-up);
# cap N gives a step N seconds or what is left, and skipping a step is said, not hidden
TOTAL=${TOTAL:-$([ -n "${DRY:-}" ] && echo 3000 || echo 470)}
DEADLINE=$(( $(date +%s) + TOTAL ))
cap() { local left=$(( DEADLINE - $(date +%s) - 15 )); [ "$left" -lt "$1" ] && echo "$left" || echo "$1"; }
enough() { [ "$(cap 1000000)" -ge "${1:-20}" ] || { echo "  (skipped: $(( DEADLINE - $(date +%s) )) s left of TOTAL=$TOTAL)"; return 1; }; }

# ---- 0. runtime: carried node, modules, nats-server, libvulkan, data
C=$PWD/.gpu-carry
if [ -d "$C" ]; then
  mkdir -p "$C/bin"
  unxz() { $PY -c 'import lzma,sys,shutil; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2" && chmod +x "$2"; }
  command -v node >/dev/null || [ -x "$C/bin/node" ] || unxz "$C/node.xz" "$C/bin/node"
  command -v nats-server >/dev/null || [ -x "$C/bin/nats-server" ] || unxz "$C/nats-server.xz" "$C/bin/nats-server"
  export PATH=$C/bin:$PATH
  [ -d node_modules/onnxruntime-node ] && [ -d dist ] || $PY -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(".")' "$C/runtime.tar.xz"
  if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1 '; then for d in "$C"/libvulkan1_*.deb; do dpkg -x "$d" /; done; ldconfig; fi
  if [ ! -d data/cifar10/test ] && [ -f "$C/cifar10-test.tar.gz" ]; then mkdir -p data/cifar10 && tar xzf "$C/cifar10-test.tar.gz" -C data/cifar10; fi
fi
NV=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$NV" ]; then export VK_ICD_FILENAMES=$NV VK_DRIVER_FILES=$NV; fi
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f .vk/env.sh ]; then . .vk/env.sh; fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$OUT/xdg}; mkdir -p -m 700 "$XDG_RUNTIME_DIR"
[ -d dist ] || npx tsc -p tsconfig.json || exit 1
PC="node bin/patchcert.js"
stamp "node $(node --version); $($PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())' 2>&1 | tail -1)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
node -e 'import("./dist/worker/backends/webgpu-adapter.js").then(async (m) => { const p = await m.probeWebgpuAdapter(); console.log("adapter: " + m.describeAdapter(p.adapter) + (p.error ? " (" + p.error + ")" : "")); })'
[ -d data/cifar10/test ] || { echo "no data/cifar10/test (CIFAR-10 JPEG test set): carry .gpu-carry/cifar10-test.tar.gz" >&2; exit 1; }

record() { echo "$1" >> "$RES"; echo "  -> $1"; }
summary_rate() { node -e 'const s = require(process.argv[1]); console.log(JSON.stringify({ images: s.images, ablations: s.run.ablationsRun, wallSeconds: +s.run.wallSeconds.toFixed(2), ablationsPerSecond: +s.run.ablationsPerSecond.toFixed(1), device: s.run.backends[0]?.device }))' "$1/summary.json"; }

# ---- 1. models
M=$OUT/models; mkdir -p "$M"
if [ -n "${MODEL18:-}" ]; then R18=$MODEL18
elif [ -f models/cifar10-column4/model.onnx ] && [ -z "${DRY:-}" ]; then R18=models/cifar10-column4
else R18=$M/resnet18-c10; $PY bench/gpu_torch.py export --arch resnet18 --height 32 --width 32 --size 4 --classes 10 --out "$R18" || exit 1; fi
R50=$M/resnet50-$R50_HW
$PY bench/gpu_torch.py export --arch resnet50 --height "$R50_HW" --width "$R50_HW" --size "$R50_S" --classes 1000 --out "$R50" || exit 1
stamp "models: $R18, $R50"

# ---- synthetic ImageNet-like data (JPEG ImageFolder at R50_HW) for the ResNet-50
D50=$OUT/data50
node -e '
  const sharp = require("sharp"); const fs = require("fs"); const [dir, n, hw] = [process.argv[1], +process.argv[2], +process.argv[3]];
  (async () => { for (let i = 0; i < n; i++) { const d = `${dir}/c${i % 10}`; fs.mkdirSync(d, { recursive: true });
    const px = Buffer.alloc(hw * hw * 3); let s = i + 1; for (let j = 0; j < px.length; j++) { s = (s * 1103515245 + 12345) >>> 0; px[j] = (s >>> 24) ^ (j % 251); }
    await sharp(px, { raw: { width: hw, height: hw, channels: 3 } }).jpeg({ quality: 90 }).toFile(`${d}/${i}.jpg`); } })();' "$D50" "$N50" "$R50_HW"

# ---- 2. raw forward passes/s
for pair in "r18 $R18 $RAW18" "r50 $R50 $RAW50"; do
  set -- $pair; name=$1 model=$2; shift 2
  stamp "raw $name"
  enough && timeout "$(cap 90)" node dist/bench/backend-raw.js "$model" --backends "$BACKEND" "$@" --json "$OUT/raw-$name.json" 2>&1 | grep -v '^Warning' | tail -4
  [ -f "$OUT/raw-$name.json" ] && record "$(node -e 'const r = require(process.argv[1]); const rows = r.rows ?? r; for (const x of rows) console.log(JSON.stringify({ what: "raw", model: process.argv[2], backend: x.backend, batch: x.batch, passesPerSecond: x.passesPerSec }))' "$OUT/raw-$name.json" "$name" | tr '\n' ' ' | sed 's/} {/}\n{/g')"
done

# ---- 3. end-to-end certify, one process
stamp "certify r18 on $BACKEND, $N18 images"
# as many of the N18 images as the raw rate says fit into STEP seconds
if [ -f "$OUT/raw-r18.json" ]; then
  fit=$(node -e 'const r = require(process.argv[1]).rows; const v = Math.max(0, ...r.map((x) => x.passesPerSec)); console.log(v > 0 ? Math.floor(v * 0.6 * +process.argv[2] / 32) : 0)' "$OUT/raw-r18.json" "$STEP")
  if [ "$fit" -gt 0 ] && [ "$fit" -lt "$N18" ]; then stamp "N18 $N18 -> $fit (raw rate x 0.6 x ${STEP}s)"; N18=$fit; fi
fi
enough && timeout "$(cap $((STEP + 60)))" $PC certify --backend "$BACKEND" --model "$R18" --data data/cifar10/test --limit "$N18" --thresholds 0.3 \
  --tile-images "$TILE18" --tile-ablations 32 --out "$OUT/r18-$BACKEND" --fresh --quiet 2>&1 | grep -v '^Warning' | tail -3
[ -f "$OUT/r18-$BACKEND/summary.json" ] && record "{\"what\":\"certify\",\"model\":\"r18\",\"workers\":1,\"backend\":\"$BACKEND\",\"run\":$(summary_rate "$OUT/r18-$BACKEND")}"
stamp "certify r50 on $BACKEND, $N50 images"
enough && timeout "$(cap "$STEP")" $PC certify --backend "$BACKEND" --model "$R50" --data "$D50" --format imagefolder --limit "$N50" --thresholds 0.3 \
  --tile-images 1 --tile-ablations "$R50_HW" --out "$OUT/r50-$BACKEND" --fresh --quiet 2>&1 | grep -v '^Warning' | tail -3
[ -f "$OUT/r50-$BACKEND/summary.json" ] && record "{\"what\":\"certify\",\"model\":\"r50\",\"workers\":1,\"backend\":\"$BACKEND\",\"run\":$(summary_rate "$OUT/r50-$BACKEND")}"

# ---- 4. PyTorch on the same GPU
for spec in "r18 $R18 $N18 100 2048" "r50 $R50 $N50 8 448"; do
  set -- $spec
  for mode in authors best; do
    stamp "pytorch $mode $1"
    enough 40 || continue
    line=$(timeout "$(cap 150)" $PY bench/gpu_torch.py loop --model "$2" --mode "$mode" --images "$3" --batch "$4" --rows "$5" --budget "$TORCH_BUDGET" 2>&1 | tee "$OUT/torch-$1-$mode.log" | grep '^result ' | tail -1)
    [ -n "$line" ] && record "{\"what\":\"pytorch\",\"model\":\"$1\",\"run\":${line#result }}" || tail -3 "$OUT/torch-$1-$mode.log"
  done
done

# ---- 5. 2 and 4 worker processes over a local nats-server
PORT=$((20000 + RANDOM % 20000))
nats-server -js -p "$PORT" -sd "$OUT/nats" -a 127.0.0.1 > "$OUT/nats.log" 2>&1 &
NATS_PID=$!
sleep 1
for W in 2 4; do
  stamp "$W workers on $BACKEND, r18, $N18W images"
  pids=()
  for i in $(seq 1 "$W"); do
    $PC worker --nats "nats://127.0.0.1:$PORT" --backend "$BACKEND" --concurrency 2 --prep-threads 2 --worker-id "w$W-$i" > "$OUT/worker-$W-$i.log" 2>&1 &
    pids+=($!)
  done
  enough 40 && timeout "$(cap "$STEP")" $PC certify --nats "nats://127.0.0.1:$PORT" --backend "$BACKEND" --model "$R18" --data data/cifar10/test --limit "$N18W" \
    --thresholds 0.3 --tile-images "$TILE18" --tile-ablations 32 --unit-images "$UNIT" --out "$OUT/r18-nats-$W" --job-id "gpu-bench-$W-$T0" --quiet 2>&1 | grep -v '^Warning' | tail -2
  [ -f "$OUT/r18-nats-$W/summary.json" ] && record "{\"what\":\"certify\",\"model\":\"r18\",\"workers\":$W,\"backend\":\"$BACKEND\",\"run\":$(summary_rate "$OUT/r18-nats-$W")}"
  # workers drain on SIGTERM; a unit still running after 10 s is abandoned (the job is over)
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 10
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
done
kill -TERM "$NATS_PID" 2>/dev/null; wait "$NATS_PID" 2>/dev/null

# ---- 6. the GPU run's counts against the CPU provider's
for spec in "r18 $R18 data/cifar10/test $NCPU18 32 16" "r50 $R50 $D50 $NCPU50 $R50_HW 1"; do
  set -- $spec
  stamp "cpu check $1, $4 images"
  fmt=(); [ "$1" = r50 ] && fmt=(--format imagefolder)
  enough && timeout "$(cap "$STEP")" $PC certify --backend onnx --model "$2" --data "$3" "${fmt[@]}" --limit "$4" --thresholds 0.3 --tile-images "$6" --tile-ablations "$5" \
    --out "$OUT/$1-cpu" --fresh --quiet 2>&1 | grep -v '^Warning' | tail -1
  if [ -f "$OUT/$1-cpu/images.jsonl" ] && [ -f "$OUT/$1-$BACKEND/images.jsonl" ]; then
    record "$(node -e '
      const fs = require("fs"); const [a, b, n] = [process.argv[1], process.argv[2], +process.argv[3]];
      const A = fs.readFileSync(a, "utf8").trim().split("\n").slice(0, n), B = fs.readFileSync(b, "utf8").trim().split("\n").slice(0, n);
      const diff = A.map((l, i) => [JSON.parse(l), JSON.parse(B[i])]).filter(([x, y]) => JSON.stringify(x) !== JSON.stringify(y));
      console.log(JSON.stringify({ what: "counts-vs-cpu", model: process.argv[4], images: A.length, differing: diff.length, first: diff.slice(0, 3).map(([x, y]) => ({ index: x.index, gpu: x["0.3"]?.counts, cpu: y["0.3"]?.counts })) }))' \
      "$OUT/$1-$BACKEND/images.jsonl" "$OUT/$1-cpu/images.jsonl" "$4" "$1")"
  fi
done

$PY bench/gpu_table.py "$RES" | tee "$OUT/table.md"
stamp "done"
