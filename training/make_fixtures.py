"""Regenerates the tiny fixture models in test/fixtures/models/ (a few KB of weights each):

  /usr/bin/python3 -m training.make_fixtures [--out test/fixtures/models]

tiny-gray: 8x8x1 source images, column s=2 stride 1, levine6 (2 channels), 3 classes.
tiny-rgb:  8x8x3 source images, block s=3 stride 1, mask (4 channels), 4 classes.
tiny-kept: 8x8x3 source images, column s=4 stride 1, levine6, band-native (inputView "kept": the
           8x4 band read around the wrap, plus its position), 4 classes that depend on where a
           bright stripe sits, so the position input matters.
tiny-224:  224x224x3 source images, column s=25 stride 1, levine6 (6 channels), 4 classes: the
           ImageNet geometry (224 ablations per image) for pipeline tests at that size.
The first two are the `tinycnn` architecture (SmallCNN with widths 4/8, hidden 16, BatchNorm folded
on export), tiny-224 is `tinygap` (the same with global average pooling, so it stays a few KB at
224x224); all are trained briefly on synthetic images (seconds; tiny-224 ~2.5 min on one thread), so
their votes vary with the image and the ablation. Deterministic on one machine (seeded); bytes may
differ across PyTorch versions, which changes the sha256 values in the manifests, so commit the
regenerated folders together."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import torch
import torch.nn.functional as F

from .ablation import Scheme, random_ablated_inputs
from .export import export_model
from .models import build_for_config


def synth_gray(n: int, g: torch.Generator):
    """3 classes by which rows are bright: top half, bottom half, or alternating rows; noisy."""
    y = torch.randint(3, (n,), generator=g)
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.4
    rows = torch.arange(8)
    pattern = torch.stack([(rows < 4).float(), (rows >= 4).float(), (rows % 2 == 0).float()])  # 3 x 8
    # the pattern shows faintly or not at all in some columns, so single ablations disagree
    x = x + 0.5 * pattern[y][:, None, :, None] * torch.rand(n, 1, 1, 8, generator=g) ** 2
    return x.clamp(0, 1), y


def synth_rgb(n: int, g: torch.Generator):
    """4 classes by dominant colour: red, green, blue, gray; with noise and random brightness."""
    y = torch.randint(4, (n,), generator=g)
    base = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.5, 0.5, 0.5]])
    x = base[y][:, :, None, None] * (0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g))
    x = x + 0.35 * torch.randn(n, 3, 8, 8, generator=g)
    return x.clamp(0, 1), y


def synth_rgb224(n: int, g: torch.Generator):
    """synth_rgb's 4 colour classes at 224x224, with blotchy (8x8-pixel) noise as JPEG leaves it."""
    y = torch.randint(4, (n,), generator=g)
    base = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8], [0.5, 0.5, 0.5]])
    x = base[y][:, :, None, None] * (0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g))
    blotch = F.interpolate(torch.randn(n, 3, 28, 28, generator=g), scale_factor=8, mode="nearest")
    x = x + 0.25 * blotch + 0.05 * torch.randn(n, 3, 224, 224, generator=g)
    return x.clamp(0, 1), y


def synth_stripe(n: int, g: torch.Generator):
    """4 classes by which quarter of the columns holds a bright 2-pixel vertical stripe; noisy."""
    y = torch.randint(4, (n,), generator=g)
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.35
    cols = torch.arange(8)
    stripe = (cols[None, :] // 2 == y[:, None]).float()  # n x 8
    x = x + 0.6 * stripe[:, None, None, :] * (0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=g))
    return x.clamp(0, 1), y


FIXTURES = {
    "tiny-gray": dict(channels=1, encoding="levine6", scheme=Scheme("column", 2, 1), classes=["top", "bottom", "stripes"],
                      synth=synth_gray),
    "tiny-rgb": dict(channels=3, encoding="mask", scheme=Scheme("block", 3, 1), classes=["red", "green", "blue", "gray"],
                     synth=synth_rgb),
    "tiny-kept": dict(channels=3, encoding="levine6", scheme=Scheme("column", 4, 1), view="kept",
                      classes=["q0", "q1", "q2", "q3"], synth=synth_stripe),
    "tiny-224": dict(channels=3, encoding="levine6", scheme=Scheme("column", 25, 1), classes=["red", "green", "blue", "gray"],
                     synth=synth_rgb224, hw=224, arch="tinygap", n=384, steps=150, batch=32, parity_count=2,
                     logit_scale=0.25),
}


def train_tiny(name: str, spec: dict, seed: int = 0):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    hw, n, steps, batch = spec.get("hw", 8), spec.get("n", 4096), spec.get("steps", 300), spec.get("batch", 128)
    x, y = spec["synth"](n, g)
    xt, yt = spec["synth"](n // 8, torch.Generator().manual_seed(seed + 1))
    view = spec.get("view", "full")
    model = build_for_config(fixture_config(name, spec))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    t0 = time.time()
    model.train()
    for step in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        xb = random_ablated_inputs(x[idx], spec["scheme"], spec["encoding"], view, generator=g)
        loss = F.cross_entropy(model(*xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        xa = random_ablated_inputs(xt, spec["scheme"], spec["encoding"], view, generator=torch.Generator().manual_seed(7))
        acc = (model(*xa).argmax(1) == yt).float().mean().item()
    return model, acc, time.time() - t0, xt


def fixture_config(name: str, spec: dict) -> dict:
    hw = spec.get("hw", 8)
    return {"arch": spec.get("arch", "tinycnn"), "height": hw, "width": hw, "channels": spec["channels"],
            "encoding": spec["encoding"], "scheme": spec["scheme"].as_manifest(), "classes": spec["classes"],
            "name": name, **({"view": spec["view"], "position": "sincos"} if spec.get("view") else {})}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m training.make_fixtures", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="test/fixtures/models")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, spec in FIXTURES.items():
        if args.only and name not in args.only:
            continue
        model, acc, secs, xt = train_tiny(name, spec)
        if spec.get("logit_scale"):
            # a power of two scales the logits, and every backend's rounding error in them, exactly
            # (argmax unchanged): tiny-224's logits reach ~24, where tfjs-wasm came within 2% of the
            # 1e-4 parity tolerance
            with torch.no_grad():  # tiny-224 is a plain tinygap network (no kept view)
                model.fc2.weight.mul_(spec["logit_scale"])
                model.fc2.bias.mul_(spec["logit_scale"])
        out = os.path.join(args.out, name)
        shutil.rmtree(out, ignore_errors=True)
        cfg = fixture_config(name, spec)
        training = {"dataset": f"synthetic ({name}, training/make_fixtures.py)", "epochs": 1,
                    "steps": spec.get("steps", 300),
                    "seconds": round(secs, 1), "hardware": "cpu (1 thread)",
                    "accuracy": {"ablatedTest": round(acc, 4), "note": "single random ablation per synthetic test image"},
                    "command": "/usr/bin/python3 -m training.make_fixtures",
                    "torch": torch.__version__}
        export_model(model, cfg, out, xt, training, parity_count=spec.get("parity_count", 24), tfjs=not spec.get("view"),
                     parity_source="synthetic test images")
        print(f"{name}: ablated test accuracy {acc:.3f}, {secs:.1f}s -> {out}")


if __name__ == "__main__":
    main()
