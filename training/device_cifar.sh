#!/usr/bin/env bash
# CIFAR-10 ResNet-18 training for column s=4 and block s=12 in one command on a single GPU, inside a
# fixed wall-clock budget (a lent GPU machine gives ~10 minutes per command). Both models train at
# once on the GPU (data, augmentation and ablation on the device, bf16 autocast, channels_last), each
# with --time-budget so the epoch count is fixed after the first epoch. Every epoch the fp16 weights
# go to $OUT in parts <= 15 MiB, so a run cut short still returns its latest weights. Afterwards a
# plain PyTorch certification (float32, TF32 off) of the fp16 weights gives reference figures.
#
#   OUT=/tmp/out BUDGET=380 training/device_cifar.sh
#
# Environment: OUT (output folder), BUDGET (training seconds per model, default 380), TARBALLS
# (folder holding the CIFAR-10 JPEG test.tar.gz, train-1.tar.gz, train-2.tar.gz; default
# ../shared/datasets/cifar10-jpeg, else .devdata), PYTHON (default python3), EXTRA (more train.py
# flags, e.g. for a CPU dry run: "--device cpu --threads 2 --train-limit 512"), REF_LIMIT_COLUMN /
# REF_LIMIT_BLOCK (images for the reference certification; default 10000 / 500), MODELS (default
# "column4 block12"), RECIPE (fast: batch 512, lr 0.3 nesterov, 2 warm-up epochs + cosine — the
# committed models; authors: the settings of the authors' train_cifar_band.py — batch 128, lr 0.1,
# momentum 0.9, wd 5e-4 on every parameter, one band position per batch — with lr x0.1 at 50% and
# 75% of the epochs, as their README resumes at lower rates), EPOCHS (the most epochs, which the
# budget may lower; default 200).
#
# The lease copies the working tree and carried paths, 64 MiB at most: the committed CIFAR-10 models
# (45 MB) plus the archives (19 MB) are over it, so take models/cifar10-* out of the tree (git rm -r
# --cached, move away; restore with git reset + move back) for the device call, carrying .devdata.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the output folder}
BUDGET=${BUDGET:-380}
PY=${PYTHON:-python3}
EXTRA=${EXTRA:-}
MODELS=${MODELS:-column4 block12}
mkdir -p "$OUT" training/runs data/cifar10
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

stamp "host: $(nproc) cores; $($PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name())')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

if [ ! -f data/cifar10-u8-train.pt ]; then
  TB=${TARBALLS:-}
  if [ -z "$TB" ]; then
    if [ -d ../shared/datasets/cifar10-jpeg ]; then TB=../shared/datasets/cifar10-jpeg; else TB=.devdata; fi
  fi
  for f in "$TB"/*.tar.gz; do tar xzf "$f" -C data/cifar10 || { echo "cannot unpack $f" >&2; exit 1; }; done
  # decode once into the uint8 caches both trainers read
  $PY -c 'from training.data import resolve_config, load_dataset_from_config as L
c = resolve_config("cifar10"); [print(s, len(L(c, s))) for s in ("train", "test")]' || exit 1
fi
stamp "data ready"

case "${RECIPE:-fast}" in
  fast) OPT="--batch-size 512 --lr 0.3 --nesterov --weight-decay 5e-4 --warmup-epochs 2 --sched cosine" ;;
  authors) OPT="--batch-size 128 --lr 0.1 --weight-decay 5e-4 --bn-weight-decay --ablation-per batch --sched step --milestones 0.5,0.75" ;;
  *) echo "RECIPE must be fast or authors, got $RECIPE" >&2; exit 2 ;;
esac
stamp "recipe ${RECIPE:-fast}: $OPT"
declare -A ARGS=(
  [column4]="--scheme column --size 4"
  [block12]="--scheme block --size 12"
)
pids=()
for m in $MODELS; do
  name=cifar10-$m
  rm -rf "training/runs/$name"
  # shellcheck disable=SC2086
  ( $PY -m training.train --dataset cifar10 --arch resnet18 ${ARGS[$m]} --stride 1 --encoding levine6 \
      $OPT --checkpoint-every 10 \
      --epochs "${EPOCHS:-200}" --time-budget "$BUDGET" --channels-last --progress-every 60 \
      --run "training/runs/$name" --name "$name" --snapshot-dir "$OUT" $EXTRA 2>&1 | sed -u "s/^/[$m] /" ) &
  pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
stamp "training finished (failures: $fail)"

DEV=cuda
$PY -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)' || DEV=cpu
for m in $MODELS; do
  name=cifar10-$m
  snap=training/runs/$name/snapshot.fp16.pt
  [ -f "$snap" ] || { echo "no snapshot for $name"; continue; }
  if [ "$m" = column4 ]; then lim=${REF_LIMIT_COLUMN:-10000}; else lim=${REF_LIMIT_BLOCK:-500}; fi
  stamp "reference certification of $name on $lim test images ($DEV)"
  $PY bench/reference_loop.py --checkpoint "$snap" --device "$DEV" --limit "$lim" --batch 1000 \
    --thresholds 0.1,0.2,0.3,0.4,argmax --summary --out "$OUT/ref-$name.jsonl.gz" 2>&1 | sed -u "s/^/[$m ref] /"
done
stamp "done"
ls -la "$OUT"
