"""CI test of the ImageNet recipe (ResNet-50, column s=25) on a tiny generated ImageFolder
(plain asserts, ~45 s on 2 CPU cores):

  /usr/bin/python3 -m training.test_imagenet

The train.py arguments are read from training/run.sh's `imagenet-column25` preset, so the test
follows the recipe as it changes; only what cannot run here is overridden (appended, so argparse
keeps the last value): 1 epoch, batch 2, 2 DataLoader workers, CPU with 2 threads, a temp run and
export folder, ONNX only (ResNet-50's TF.js export is ~94 MB and covered at 32x32 by test_smoke),
a 4-ablation parity sample. Then: the JPEGs of odd sizes are decoded to 224x224 (resize 256 +
centre crop) by the streaming loader, ONNX export + manifest, and the ONNX vs PyTorch parity check."""
from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
import time

import numpy as np
import torch

from .parity import check as parity_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# width x height: none is 224 or 256 on both sides, some are taller than wide
SIZES = [(300, 260), (256, 400), (333, 250), (260, 300), (411, 287), (250, 256)]


def recipe_args(model: str = "imagenet-column25") -> list[str]:
    """The ARGS=(...) of run.sh's preset, with ${IMAGENET...} and ${EPOCHS:-N} left as placeholders."""
    text = open(os.path.join(REPO, "training", "run.sh")).read()
    m = re.search(re.escape(model) + r"\)\s*\n(.*?);;", text, re.S)
    assert m, f"run.sh has no {model} preset"
    body = re.search(r"ARGS=\((.*)\)\s*$", m.group(1).strip(), re.S)
    assert body, f"run.sh {model}: no ARGS=(...)"
    args = re.sub(r'"\$\{IMAGENET:[^}]*\}"', "@IMAGENET@", body.group(1))
    args = re.sub(r'"\$\{EPOCHS:-(\d+)\}"', "@EPOCHS@", args)
    assert "$" not in args, f"run.sh {model}: unexpected shell expansion in {args!r}"
    return shlex.split(args)


def write_tiny_imagenet(root: str, classes: int = 3) -> None:
    """root/{train,val}/n0K/*.JPEG: class K = a bright colour channel K over noise; odd sizes."""
    from PIL import Image
    g = np.random.default_rng(0)
    for split, per in (("train", 2), ("val", 1)):
        for c in range(classes):
            d = os.path.join(root, split, f"n0{c}")
            os.makedirs(d, exist_ok=True)
            for i in range(per):
                w, h = SIZES[(per * c + i + (split == "val")) % len(SIZES)]
                x = g.integers(0, 80, (h, w, 3))
                x[..., c] += 150
                Image.fromarray(np.clip(x, 0, 255).astype(np.uint8)).save(os.path.join(d, f"img{i}.JPEG"), quality=85)


def test_recipe(tmp: str) -> None:
    from . import train as T
    data, run, out = os.path.join(tmp, "imagenet"), os.path.join(tmp, "run"), os.path.join(tmp, "model")
    write_tiny_imagenet(data)
    recipe = recipe_args()
    assert recipe[recipe.index("--arch") + 1] == "resnet50" and recipe[recipe.index("--size") + 1] == "25"
    argv = [{"@IMAGENET@": data, "@EPOCHS@": "1"}.get(a, a) for a in recipe]
    argv += ["--batch-size", "2", "--workers", "2", "--device", "cpu", "--threads", "2", "--run", run,
             "--export", out, "--name", "imagenet-column25", "--no-tfjs", "--parity-count", "4",
             "--progress-every", "1000"]
    man = T.main(argv)
    assert man["schema"] == "patchcert-model/1" and man["encoding"] == "levine6"
    assert man["input"] == {"height": 224, "width": 224, "channels": 3}
    assert man["ablation"] == {"kind": "column", "size": 25, "stride": 1}
    assert man["classes"] == ["n00", "n01", "n02"] and set(man["formats"]) == {"onnx"}
    t = man["training"]
    assert t["architecture"] == "resnet50" and t["trainImages"] == 6 and t["epochs"] == 1, t
    assert t["accuracy"]["testImages"] == 3 and t["augment"] == "imagenet", t
    with open(os.path.join(run, "log.jsonl")) as f:
        log = [json.loads(line) for line in f]
    assert len(log) == 1 and log[0]["val_n"] == 3
    with open(os.path.join(out, "parity", "meta.json")) as f:
        meta = json.load(f)
    assert meta["shape"] == [4, 6, 224, 224] and meta["source"] == "imagenet test images", meta
    # After 3 steps of batch 2 the BatchNorm running statistics are far from the activations', so the
    # logits are ~1e4 and float32 rounding alone differs by ~1e-3: scale the 1e-4 tolerance to them.
    logits = np.fromfile(os.path.join(out, "parity", "logits.bin"), dtype="<f4")
    tol = 1e-4 * max(1.0, float(np.abs(logits).max()))
    r = parity_check(out, tol=tol, verbose=False)
    assert not r["problems"] and r["onnx_argmax_agreement"] == 1.0, r
    print(f"  resnet50 column s=25: {t['seconds']}s for 1 epoch; ONNX {os.path.getsize(os.path.join(out, 'model.onnx')) >> 20} MiB; "
          f"ONNX vs PyTorch {r['onnx_max_abs_diff']:.2g} (tol {tol:.2g}, max |logit| {np.abs(logits).max():.3g})")


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        test_recipe(tmp)
    print(f"ok imagenet recipe (resnet50, column s=25, 224x224) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
