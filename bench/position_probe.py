"""How much a band-native (kept-view) model relies on its position input (issue 14).

Base classifier accuracy on single ablated test images (one random band position per image, fixed
seed) when the model is given its true positions, the positions shifted by half the image, and
uniformly random positions. A model that ignores the position scores the same on all three.

    /usr/bin/python3 bench/position_probe.py models/cifar10-column4-band [--limit 10000] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from reference_loop import load_model_dir  # noqa: E402
from training.ablation import Scheme, encode_kept, kept_view, positions_tensor, random_positions  # noqa: E402
from training.data import load_dataset_from_config  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, ck = load_model_dir(args.model)
    cfg = ck["config"]
    if cfg.get("view") != "kept":
        raise SystemExit(f"{args.model} is not a kept-view model")
    dcfg = dict(cfg["data"])
    if dcfg.get("cache") and not os.path.isabs(dcfg["cache"]):
        dcfg["cache"] = os.path.join(ROOT, dcfg["cache"])
    if not os.path.isabs(dcfg["path"]):
        dcfg["path"] = os.path.join(ROOT, dcfg["path"])
    data = load_dataset_from_config(dcfg, "test", args.limit)
    scheme = Scheme(**cfg["scheme"])
    n = len(data)
    h, w = cfg["height"], cfg["width"]
    g = torch.Generator().manual_seed(args.seed)
    rows, cols = random_positions(scheme, n, h, w, "cpu", g)
    fake_rows, fake_cols = random_positions(scheme, n, h, w, "cpu", g)
    variants = {
        "true position": (rows, cols),
        "shifted by half the image": ((rows + h // 2) % h if scheme.kind != "column" else rows,
                                      (cols + w // 2) % w if scheme.kind != "row" else cols),
        "random position": (fake_rows, fake_cols),
    }
    out = {}
    with torch.no_grad():
        for name, (pr, pc) in variants.items():
            correct = 0
            for i in range(0, n, 500):
                x = data.images_float(slice(i, min(n, i + 500)))
                xk = encode_kept(kept_view(x, scheme, rows[i:i + 500], cols[i:i + 500]), cfg["encoding"])
                logits = model(xk, positions_tensor(pr[i:i + 500], pc[i:i + 500]))
                correct += (logits.argmax(1) == data.labels[i:i + 500]).sum().item()
            out[name] = correct / n
            print(f"{name}: base classifier accuracy {100 * correct / n:.2f}% of {n} ablated test images", flush=True)
    print("probe " + json.dumps({"model": args.model, "images": n, **out}))


if __name__ == "__main__":
    main()
