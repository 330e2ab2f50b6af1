"""Check an exported model against its PyTorch parity sample:

  python3 -m training.parity MODEL_DIR [--tol 1e-4]

Reads MODEL_DIR/model.manifest.json, parity/{inputs,logits}.bin and parity/meta.json; runs the ONNX
file (onnxruntime when Python has it, else training.onnx_eval, an interpreter of the ONNX graph) and
compares the logits with PyTorch's to `tol` (max abs difference). Also verifies the manifest's sha256
values. TF.js is checked on the Node side (test/training-models.test.ts)."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from .export import sha256_files


def load_parity(model_dir: str):
    pdir = os.path.join(model_dir, "parity")
    with open(os.path.join(pdir, "meta.json")) as f:
        meta = json.load(f)
    x = np.fromfile(os.path.join(pdir, "inputs.bin"), dtype="<f4").reshape(meta["shape"])
    y = np.fromfile(os.path.join(pdir, "logits.bin"), dtype="<f4").reshape(meta["count"], meta["numClasses"])
    return x, y, meta


def check(model_dir: str, tol: float = 1e-4, verbose: bool = True) -> dict:
    from .onnx_eval import run_onnx
    with open(os.path.join(model_dir, "model.manifest.json")) as f:
        man = json.load(f)
    problems = []
    for fmt, entry in man["formats"].items():
        path = os.path.join(model_dir, entry["file"])
        if fmt == "tfjs":
            with open(path) as f:
                doc = json.load(f)
            d = os.path.dirname(path)
            paths = [path] + [os.path.join(d, p) for g in doc["weightsManifest"] for p in g["paths"]]
        else:
            paths = [path]
        if sha256_files(paths) != entry["sha256"]:
            problems.append(f"{fmt}: sha256 mismatch")
    x, y, meta = load_parity(model_dir)
    onnx_entry = man["formats"].get("onnx")
    result = {"model": model_dir, "count": meta["count"], "problems": problems}
    if onnx_entry:
        extra = None
        if meta.get("positions"):  # kept-view model: its second input
            pos = np.fromfile(os.path.join(model_dir, "parity", meta["positions"]), dtype="<f4").reshape(meta["count"], 2)
            extra = {onnx_entry.get("positionName", "position"): pos}
        got, how = run_onnx(os.path.join(model_dir, onnx_entry["file"]), x, onnx_entry.get("inputName", "input"), extra)
        diff = float(np.abs(got - y).max())
        agree = float((got.argmax(1) == y.argmax(1)).mean())
        result.update({"onnx_evaluator": how, "onnx_max_abs_diff": diff, "onnx_argmax_agreement": agree})
        if not diff <= tol:
            problems.append(f"onnx: max |logit diff| {diff:.3g} > {tol}")
    if verbose:
        print(json.dumps(result, indent=1))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m training.parity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dirs", nargs="+")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    bad = 0
    for d in args.model_dirs:
        r = check(d, args.tol)
        bad += bool(r["problems"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
