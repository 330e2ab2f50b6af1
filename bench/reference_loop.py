"""Plain PyTorch reference for the (De)Randomized Smoothing certification loop (issue 5.3).

Written for the benchmark, mirroring the loop in Levine & Feizi's code: for a batch of images, for
each band position p, build the ablated batch (every image in the batch with only the band at p
kept), run the network once on it, and add the votes to per-image counts. One forward "pass" here is
one ablated image; a network call covers `--batch` images at one band position (the authors'
shape), so an image of K positions costs K calls per batch of images.

  /usr/bin/python3 bench/reference_loop.py --checkpoint training/runs/fmnist-column2/last.pt \
      --dataset fashion-mnist --limit 1000 --thresholds 0.3,argmax --threads 2 --batch 100 \
      --out /tmp/ref-py.jsonl

Data: the checkpoint's recorded data set (training/data.py; CIFAR-10 comes from the uint8 cache
data/cifar10-u8-test.pt, ImageFolder order), or --dataset/--data/--data-format. Ablation geometry
and encodings come from training/ablation.py (identical to core/ablation.ts, core/encoding.ts).

Votes as patchcert casts them: argmax on float32 logits (lowest index on ties); a threshold θ votes
for every class whose float32 torch.softmax is >= float32(θ). Certificate as core/certificate.ts:
prediction = most votes (lowest index on ties, 0 if no votes), certified for an m x m patch when
n_c - n_c' > 2Δ, or = 2Δ with c < c', for every c' ≠ c; the largest certified side is reported.

Output: one JSON line per image {index, label, results: {rule: {counts, prediction, abstained,
certified}}} (patchcert's images.jsonl shape) and a final stdout line starting "timing " with a JSON
object: images, positions, passes, calls, wall seconds of the certification loop (model and data
loaded beforehand), passes/s, threads, batch, torch version.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from training.ablation import Scheme, ablation_count, index_ablated_inputs  # noqa: E402
from training.data import load_dataset_from_config, resolve_config  # noqa: E402
from training.export import load_checkpoint, onnx_state_dict  # noqa: E402
from training.models import build_for_config  # noqa: E402


def load_model_dir(model_dir: str):
    """(model, checkpoint-like dict) from a committed model folder whose model.onnx keeps the PyTorch
    tensor names (float16-stored exports)."""
    with open(os.path.join(model_dir, "model.manifest.json")) as f:
        man = json.load(f)
    inp = man["input"]
    view = man.get("inputView", "full")
    net = build_for_config({"arch": man["training"]["architecture"], "height": inp["height"], "width": inp["width"],
                            "channels": inp["channels"], "encoding": man["encoding"], "scheme": man["ablation"],
                            "classes": man["classes"], "view": view,
                            "position": man["training"].get("position", "sincos")})
    sd = onnx_state_dict(os.path.join(model_dir, man["formats"]["onnx"]["file"]))
    own = net.state_dict()
    net.load_state_dict({k: sd[k].to(own[k].dtype) if k in sd else own[k] for k in own})
    data = {"dataset": man["training"].get("dataset")}
    data.update(resolve_config(data["dataset"]) if data["dataset"] else {})
    cfg = {"height": inp["height"], "width": inp["width"], "channels": inp["channels"], "encoding": man["encoding"],
           "scheme": man["ablation"], "classes": man["classes"], "name": man["name"], "data": data, "view": view}
    return net.eval(), {"config": cfg}


def axis_delta(n: int, band: int, stride: int, patch: int) -> int:
    """core/ablation.ts axisDelta: most band positions a patch of `patch` pixels can meet."""
    if patch < 1:
        return 0
    positions = list(range(0, n, stride))
    if patch >= n:
        return len(positions)
    window = patch + band - 1
    if window >= n:
        return len(positions)
    hit = [0] * n
    for p in positions:
        hit[p] = 1
    best = 0
    for x in range(0, n - patch + 1):
        best = max(best, sum(hit[(x - band + 1 + k) % n] for k in range(window)))
    return best


def patch_delta(s: Scheme, h: int, w: int, m: int) -> int:
    if s.kind == "column":
        return axis_delta(w, s.size, s.stride, m)
    if s.kind == "row":
        return axis_delta(h, s.size, s.stride, m)
    return axis_delta(h, s.size, s.stride, m) * axis_delta(w, s.size, s.stride, m)


def certify_counts(counts: list[int], deltas: list[int]) -> dict:
    pred = 0
    for c in range(len(counts)):
        if counts[c] > counts[pred]:
            pred = c
    abstained = sum(counts) == 0
    side = 0
    if not abstained:
        for m, d in enumerate(deltas, start=1):
            ok = all(counts[pred] - counts[o] > 2 * d or (counts[pred] - counts[o] == 2 * d and pred < o)
                     for o in range(len(counts)) if o != pred)
            if not ok:
                break
            side = m
    return {"counts": counts, "prediction": pred, "abstained": abstained, "certified": side}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="training/runs/<run>/last.pt (or an fp16 snapshot)")
    ap.add_argument("--model", default=None,
                    help="instead of --checkpoint: a committed model folder stored with float16 weights "
                         "(models/cifar10-column4); the network is rebuilt from its model.onnx initializers")
    ap.add_argument("--dataset", default=None, help="data set preset (default: the checkpoint's)")
    ap.add_argument("--data", default=None, help="data path (default: the preset's / checkpoint's)")
    ap.add_argument("--data-format", default=None, help="idx, cifar10-bin or imagefolder")
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--thresholds", default="0.3,argmax", help="comma list of θ and/or argmax")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (intra-op)")
    ap.add_argument("--batch", type=int, default=100,
                    help="images per network call; each call is one band position over this many images")
    ap.add_argument("--out", default=None, help="per-image JSONL (default: none; gzipped when it ends in .gz)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (float32, TF32 off: the same arithmetic "
                                                   "class as patchcert's backends)")
    ap.add_argument("--summary", action="store_true",
                    help="print smoothed clean and certified accuracy per rule (patch sides 1..10)")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if bool(args.checkpoint) == bool(args.model):
        raise SystemExit("give exactly one of --checkpoint and --model")
    model, ck = load_checkpoint(args.checkpoint) if args.checkpoint else load_model_dir(args.model)
    model = model.float().eval().to(device)
    cfg = ck["config"]
    if args.dataset or args.data or args.data_format:
        dcfg = resolve_config(args.dataset or cfg["data"].get("dataset"), args.data_format, args.data)
    else:
        dcfg = dict(cfg["data"])
    if dcfg.get("cache") and not os.path.isabs(dcfg["cache"]):
        dcfg["cache"] = os.path.join(ROOT, dcfg["cache"])
    if not os.path.isabs(dcfg["path"]):
        dcfg["path"] = os.path.join(ROOT, dcfg["path"])
    data = load_dataset_from_config(dcfg, args.split, args.limit)
    h, w, c = data.shape
    if (h, w, c) != (cfg["height"], cfg["width"], cfg["channels"]):
        raise SystemExit(f"data {h}x{w}x{c} does not match the model {cfg['height']}x{cfg['width']}x{cfg['channels']}")
    scheme = Scheme(**cfg["scheme"])
    encoding = cfg["encoding"]
    view = cfg.get("view", "full")  # "kept": a band-native model, fed the band and its position
    k = ablation_count(scheme, h, w)
    n = len(data)
    rules = [r.strip() for r in args.thresholds.split(",") if r.strip()]
    thetas = {r: torch.tensor(float(r), dtype=torch.float32) for r in rules if r != "argmax"}
    ncls = len(cfg["classes"])
    deltas = [patch_delta(scheme, h, w, m) for m in range(1, min(h, w) + 1)]
    images = data.images_float(slice(0, n)).contiguous().to(device)  # N x C x H x W float32 in [0,1]

    counts = {r: torch.zeros(n, ncls, dtype=torch.int64) for r in rules}
    calls = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for b0 in range(0, n, args.batch):
            x = images[b0:b0 + args.batch]
            for pos in range(k):  # the authors' loop: one band position at a time over the batch
                idx = torch.full((x.shape[0],), pos, dtype=torch.int64, device=x.device)
                logits = model(*index_ablated_inputs(x, scheme, encoding, view, idx)).float().cpu()
                calls += 1
                probs = torch.softmax(logits, dim=1) if thetas else None
                for r in rules:
                    if r == "argmax":
                        counts[r][b0:b0 + x.shape[0]] += torch.nn.functional.one_hot(
                            torch.argmax(logits, dim=1), ncls)
                    else:
                        counts[r][b0:b0 + x.shape[0]] += (probs >= thetas[r]).long()
    wall = time.perf_counter() - t0

    records = [{"index": i, "label": int(data.labels[i]),
                "results": {r: certify_counts(counts[r][i].tolist(), deltas) for r in rules}} for i in range(n)]
    if args.out:
        opener = gzip.open if args.out.endswith(".gz") else open
        with opener(args.out, "wt") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
    if args.summary:
        # same definitions as core/report.ts summarizeRule (smoothed classifier, from the counts)
        for r in rules:
            correct = [rec for rec in records if rec["results"][r]["prediction"] == rec["label"]]
            cert = [sum(1 for rec in correct if rec["results"][r]["certified"] >= m) / n for m in range(1, 11)]
            print("summary " + json.dumps({"rule": r, "images": n, "clean": round(len(correct) / n, 4),
                                           "certified_1_to_10": [round(c, 4) for c in cert]}), flush=True)
    timing = {"images": n, "positions": k, "passes": n * k, "calls": calls, "wallSeconds": round(wall, 3),
              "passesPerSecond": round(n * k / wall, 1), "threads": args.threads, "batch": args.batch,
              "torch": torch.__version__, "model": cfg.get("name"), "checkpoint": args.checkpoint,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    print("timing " + json.dumps(timing), flush=True)


if __name__ == "__main__":
    main()
