#!/usr/bin/env bash
# What one JPEG pass costs a column-smoothed classifier (issue 14, part 1), on CPU:
#   16x16 box-averaged proxies of the CIFAR-10 JPEG copy (PNG, JPEG q75 4:2:0, JPEG q75 4:4:4),
#   the same small CNN trained with column ablation s=2 on each (two seeds for PNG and 4:2:0),
#   each certified by patchcert on all 10,000 test images of its own variant.
#
#   bash bench/jpeg_proxy.sh            # EPOCHS=30 THREADS=1 RUNS="png:0 q75-420:0 png:1 q75-420:1 q75-444:0"
#
# Outputs under out/proxy/: models (<variant>-s<seed>/), certify outputs (cert-<variant>-s<seed>/),
# and the summary table (table.md). Resumes: finished runs are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-30}
THREADS=${THREADS:-1}
RUNS=${RUNS:-"png:0 q75-420:0 png:1 q75-420:1 q75-444:0"}
PY=${PY:-/usr/bin/python3}
OUT=out/proxy
mkdir -p "$OUT"
[ -d data/cifar16/png ] || $PY -m training.cifar_proxy data/cifar10 data/cifar16
for run in $RUNS; do
  v=${run%%:*}; seed=${run##*:}; name=$v-s$seed
  if [ ! -f "$OUT/$name/model.manifest.json" ]; then
    resume=()
    [ -f "training/runs/proxy-$name/last.pt" ] && resume=(--resume "training/runs/proxy-$name")
    $PY -m training.train --dataset "cifar16-$v" --data-format imagefolder --data "data/cifar16/$v" \
      --cache "data/cifar16-$v-u8" --arch smallcnn --scheme column --size 2 --stride 1 --encoding levine6 \
      --epochs "$EPOCHS" --batch-size 128 --lr 0.1 --weight-decay 5e-4 --augment crop-flip --pad 2 \
      --channels-last --threads "$THREADS" --device cpu --seed "$seed" --progress-every 300 \
      --run "training/runs/proxy-$name" --export "$OUT/$name" --name "cifar16-$name" --no-tfjs "${resume[@]}"
  fi
  if [ ! -f "$OUT/cert-$name/summary.json" ]; then
    node bin/patchcert.js certify --model "$OUT/$name" --data "data/cifar16/$v/test" --format imagefolder \
      --thresholds 0.3 --max-patch 10 --threads "$THREADS" --quiet --out "$OUT/cert-$name"
  fi
done
$PY bench/jpeg_proxy_table.py "$OUT" | tee "$OUT/table.md"
