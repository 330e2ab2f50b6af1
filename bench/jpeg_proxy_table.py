"""Table of the JPEG proxy experiment (bench/jpeg_proxy.sh): per run, the base classifier's accuracy on
single ablated images and the smoothed classifier's clean and certified accuracy (theta = 0.3), read
from each certify run's summary.json; then the mean per variant and the differences to the PNG proxy.

    /usr/bin/python3 bench/jpeg_proxy_table.py out/proxy
"""
from __future__ import annotations

import json
import os
import sys

SIDES = (1, 2, 3, 4, 5)
RULE = "0.3"


def row_of(summary: dict) -> dict:
    r = next(x for x in summary["smoothed"] if x["rule"] == RULE)
    return {"base": summary["baseClassifierAblatedAccuracy"], "clean": r["cleanAccuracy"],
            **{f"{m}x{m}": r["certifiedAccuracy"][m - 1] for m in SIDES}, "images": r["images"]}


def main(out: str) -> None:
    runs = {}
    for d in sorted(os.listdir(out)):
        p = os.path.join(out, d, "summary.json")
        if d.startswith("cert-") and os.path.exists(p):
            variant, seed = d[len("cert-"):].rsplit("-s", 1)
            runs.setdefault(variant, {})[int(seed)] = row_of(json.load(open(p)))
    cols = ["base", "clean"] + [f"{m}x{m}" for m in SIDES]
    print(f"| proxy (16x16), column s=2, θ={RULE} | seed | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    means = {}
    for v in ("png", "q75-444", "q75-420"):
        for seed, r in sorted(runs.get(v, {}).items()):
            print(f"| {v} | {seed} | " + " | ".join(f"{100 * r[c]:.2f}%" for c in cols) + " |")
        if runs.get(v):
            means[v] = {c: sum(r[c] for r in runs[v].values()) / len(runs[v]) for c in cols}
            print(f"| **{v} mean** | {len(runs[v])} | " + " | ".join(f"{100 * means[v][c]:.2f}%" for c in cols) + " |")
    if "png" in means:
        for v in ("q75-444", "q75-420"):
            if v in means:
                print(f"| {v} − png | | " + " | ".join(f"{100 * (means[v][c] - means['png'][c]):+.2f}" for c in cols) + " |")
    if len(runs.get("png", {})) > 1:
        a, b = list(runs["png"].values())[:2]
        print(f"| png seed 0 − seed 1 | | " + " | ".join(f"{100 * (a[c] - b[c]):+.2f}" for c in cols) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out/proxy")
