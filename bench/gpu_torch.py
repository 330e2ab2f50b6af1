"""PyTorch side of bench/gpu.sh: model export and the two PyTorch certification loops on the GPU.

  python3 bench/gpu_torch.py export --arch resnet50 --height 224 --width 224 --size 25 --classes 1000 --out DIR
  python3 bench/gpu_torch.py loop --model DIR --mode authors|best --images N --batch B [--budget S]

export: a seeded random-init network of training/models.py, exported as patchcert exports its
models (training/export.py: float16-stored ONNX, manifest, parity sample). Speed does not depend on
the weights; certificates of such a model mean nothing (only GPU vs CPU counts are compared).

loop, timing only (counts are accumulated on the device so the work cannot be skipped):
  authors  the loop of Levine & Feizi's code: per batch of images, one forward per band position
           (the batch of images with the band at p kept), float32, TF32 off.
  best     the fastest setting here: every ablation of a chunk of images built at once on the
           device, bf16 autocast, channels_last, torch.compile (default mode, so compiling
           takes seconds, not minutes; --no-compile to skip), forward in chunks of --rows rows.
Images are uniform 8-bit-quantized noise of the model's shape, made on the device. Prints one line
"result {json}" with ablations/s over the timed part (compile and warm-up excluded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training.ablation import Scheme, ablate_index, ablation_count, encode, encoded_channels, keep_mask, index_positions  # noqa: E402
from training.export import export_model  # noqa: E402
from training.models import build_model  # noqa: E402


def cmd_export(a) -> None:
    torch.manual_seed(a.seed)
    enc = "levine6"
    net = build_model(a.arch, encoded_channels(enc, 3), a.classes, a.height, a.width)
    with torch.no_grad():  # float16 storage, as the committed models (half the bytes to carry)
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    cfg = {"arch": a.arch, "height": a.height, "width": a.width, "channels": 3, "encoding": enc,
           "scheme": {"kind": "column", "size": a.size, "stride": 1}, "classes": [f"c{i}" for i in range(a.classes)],
           "name": os.path.basename(os.path.abspath(a.out))}
    export_model(net, cfg, a.out, tfjs=False, parity_count=8, weights="float16",
                 training={"note": f"random init (seed {a.seed}) for speed benchmarks only"})
    print(f"exported {a.arch} {a.height}x{a.width} column s={a.size} to {a.out}", flush=True)


def load(model_dir: str):
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from reference_loop import load_model_dir  # noqa: E402
    net, ck = load_model_dir(model_dir)
    cfg = ck["config"]
    return net, cfg


def cmd_loop(a) -> None:
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    net, cfg = load(a.model)
    net = net.float().eval().to(dev)
    h, w, c = cfg["height"], cfg["width"], cfg["channels"]
    s = Scheme(**cfg["scheme"])
    enc = cfg["encoding"]
    k = ablation_count(s, h, w)
    ncls = len(cfg["classes"])
    g = torch.Generator(device=dev).manual_seed(0)
    images = (torch.randint(0, 256, (a.images, c, h, w), generator=g, device=dev).float() / 255)
    counts = torch.zeros(a.images, ncls, dtype=torch.int64, device=dev)
    fwd = net
    if a.mode == "best":
        net = net.to(memory_format=torch.channels_last)
        fwd = torch.compile(net) if (a.compile and dev.type == "cuda") else net
        idx_all = torch.arange(k, device=dev)

    def run(lo: int, hi: int) -> None:
        x = images[lo:hi]
        if a.mode == "authors":
            for pos in range(k):
                logits = fwd(ablate_index(x, s, enc, pos)).float()
                counts[lo:hi] += torch.nn.functional.one_hot(torch.argmax(logits, 1), ncls)
            return
        b = x.shape[0]
        # every ablation of these b images at once: [b*k, E, h, w], built on the device
        xi = x.repeat_interleave(k, 0)
        rows, cols = index_positions(s, h, w, idx_all.repeat(b))
        abl = encode(xi, keep_mask(s, h, w, rows, cols), enc).contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            for r0 in range(0, abl.shape[0], a.rows):
                logits = fwd(abl[r0:r0 + a.rows]).float()
                am = torch.argmax(logits, 1).view(-1)
                owner = torch.arange(r0, r0 + am.shape[0], device=dev) // k + lo
                counts.index_put_((owner, am), torch.ones_like(am), accumulate=True)

    with torch.no_grad():
        t_warm = time.perf_counter()
        run(0, min(a.batch, a.images))  # warm-up (and compile) on the first batch, not timed
        if dev.type == "cuda":
            torch.cuda.synchronize()
        warm = time.perf_counter() - t_warm
        t0 = time.perf_counter()
        done = 0
        for lo in range(0, a.images, a.batch):
            run(lo, min(lo + a.batch, a.images))
            done = min(lo + a.batch, a.images)
            if a.budget and time.perf_counter() - t0 > a.budget:
                break
        if dev.type == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    res = {"mode": a.mode, "model": cfg.get("name"), "images": done, "ablationsPerImage": k, "ablations": done * k,
           "wallSeconds": round(wall, 3), "ablationsPerSecond": round(done * k / wall, 1), "warmupSeconds": round(warm, 1),
           "batch": a.batch, "rows": a.rows if a.mode == "best" else a.batch, "compile": bool(a.compile and a.mode == "best" and dev.type == "cuda"),
           "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "checksum": int(counts.sum().item())}
    print("result " + json.dumps(res), flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--arch", default="resnet18")
    e.add_argument("--height", type=int, default=32)
    e.add_argument("--width", type=int, default=32)
    e.add_argument("--size", type=int, default=4)
    e.add_argument("--classes", type=int, default=10)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True)
    lp = sub.add_parser("loop")
    lp.add_argument("--model", required=True)
    lp.add_argument("--mode", choices=["authors", "best"], required=True)
    lp.add_argument("--images", type=int, default=10000)
    lp.add_argument("--batch", type=int, default=100, help="images per outer step (authors: images per forward)")
    lp.add_argument("--rows", type=int, default=2048, help="best: rows per forward")
    lp.add_argument("--no-compile", dest="compile", action="store_false")
    lp.add_argument("--budget", type=float, default=0, help="stop after this many timed seconds (0: all images)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    cmd_export(a) if a.cmd == "export" else cmd_loop(a)


if __name__ == "__main__":
    main()
