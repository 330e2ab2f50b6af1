#!/usr/bin/env bash
# One whole training run in one command: prepare data, train (resumable), export, parity check.
#
#   training/run.sh MODEL [extra train.py flags...]
#
# MODEL: fashion-mnist-column2 | cifar10-column4 | cifar10-block12 | imagenet-column25
# Runs on CUDA when PyTorch sees a GPU, else on the CPU. Re-running the same command resumes
# from training/runs/MODEL/last.pt. Environment: PYTHON (default /usr/bin/python3 if it has torch,
# else python3), EPOCHS (override the preset), IMAGENET (ImageNet root with train/ and val/ folders),
# CPU_THREADS (torch threads on CPU, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?usage: training/run.sh MODEL [extra train.py flags]}
shift || true
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if /usr/bin/python3 -c 'import torch' 2>/dev/null; then PY=/usr/bin/python3; else PY=python3; fi
fi
GPU=$($PY -c 'import torch; print(int(torch.cuda.is_available()))')
if [ "$GPU" = 1 ]; then DEV=(--device cuda); else DEV=(--device cpu --threads "${CPU_THREADS:-2}"); fi

prepare_cifar10() {
  if [ ! -f data/cifar10-u8-train.pt ] && [ ! -d data/cifar10/train ]; then
    mkdir -p data/cifar10
    for f in ../shared/datasets/cifar10-jpeg/*.tar.gz; do tar xzf "$f" -C data/cifar10; done
  fi
}

RUN=training/runs/$MODEL
mkdir -p training/runs
case "$MODEL" in
  fashion-mnist-column2)
    ARGS=(--dataset fashion-mnist --arch smallcnn --scheme column --size 2 --stride 1 --encoding levine6
          --batch-size 128 --lr 0.1 --epochs "${EPOCHS:-$([ "$GPU" = 1 ] && echo 30 || echo 6)}") ;;
  cifar10-column4)
    prepare_cifar10
    ARGS=(--dataset cifar10 --arch resnet18 --scheme column --size 4 --stride 1 --encoding levine6
          --batch-size 128 --lr 0.1 --weight-decay 5e-4 --epochs "${EPOCHS:-200}") ;;
  cifar10-block12)
    prepare_cifar10
    ARGS=(--dataset cifar10 --arch resnet18 --scheme block --size 12 --stride 1 --encoding levine6
          --batch-size 128 --lr 0.1 --weight-decay 5e-4 --epochs "${EPOCHS:-200}") ;;
  imagenet-column25)
    ARGS=(--dataset imagenet --data "${IMAGENET:?set IMAGENET=/path/to/imagenet (train/ and val/ class folders)}"
          --arch resnet50 --scheme column --size 25 --stride 1 --encoding levine6 --batch-size 256 --lr 0.1
          --weight-decay 1e-4 --epochs "${EPOCHS:-90}" --warmup-epochs 2 --workers 16 --channels-last) ;;
  *) echo "unknown model $MODEL" >&2; exit 2 ;;
esac

RESUME=()
if [ -f "$RUN/last.pt" ]; then RESUME=(--resume "$RUN"); fi
$PY -m training.train "${ARGS[@]}" "${DEV[@]}" --run "$RUN" --export "models/$MODEL" --name "$MODEL" "${RESUME[@]}" "$@" \
  2>&1 | tee -a "$RUN.out"
$PY -m training.parity "models/$MODEL"
