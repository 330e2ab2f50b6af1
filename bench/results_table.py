"""Markdown table of a finished run's smoothed accuracies (clean and certified at patch sides 1..N),
from its summary.json, optionally beside reference figures:

  python3 bench/results_table.py out/cifar10-column4/summary.json [--max-patch 10]
      [--paper "0.3:83.9,,,,,57.8"]   # rule:clean,1x1,2x2,... (empty = not reported)

Figures are percentages of all images in the run (abstentions count as wrong unless their default
prediction, class 0, is the label — core/report.ts)."""
from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("summary")
    ap.add_argument("--max-patch", type=int, default=10)
    ap.add_argument("--paper", action="append", default=[], help="rule:clean,1x1,... reference row (repeatable)")
    args = ap.parse_args()
    with open(args.summary) as f:
        s = json.load(f)
    m = args.max_patch
    head = ["rule", "clean"] + [f"{k}x{k}" for k in range(1, m + 1)]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    paper = {}
    for p in args.paper:
        rule, vals = p.split(":", 1)
        paper[rule] = vals.split(",")
    for r in s["smoothed"]:
        rule = r["rule"]
        name = "argmax" if rule == "argmax" else f"θ = {rule}"
        cells = [f"{100 * r['cleanAccuracy']:.2f}%"] + [f"{100 * a:.2f}%" for a in r["certifiedAccuracy"][:m]]
        print(f"| {name} | " + " | ".join(cells) + " |")
        if rule in paper:
            ref = paper[rule] + [""] * (m + 1 - len(paper[rule]))
            print(f"| paper, {name} | " + " | ".join(f"{v}%" if v else "" for v in ref[:m + 1]) + " |")
    abst = {r["rule"]: r["abstained"] for r in s["smoothed"]}
    base = s.get("baseClassifierAblatedAccuracy")
    print(f"\n{s['images']} images, {s['ablationsPerImage']} ablations each; abstained: {abst}; "
          f"failed images: {len(s['failedImages'])}; failed units: {len(s['failedUnits'])}")
    if base is not None:
        print(f"base classifier on single ablated images: {json.dumps(base)}")
    run = s.get("run", {})
    if run:
        print(f"wall {run.get('wallSeconds', 0):.1f} s, {run.get('ablationsPerSecond', 0):.0f} ablations/s")


if __name__ == "__main__":
    main()
