"""Export a trained checkpoint: ONNX (opset 13) + TF.js LayersModel + model.manifest.json + parity
sample. CLI:

  python3 -m training.export CHECKPOINT OUT_DIR [--name NAME] [--no-tfjs] [--parity-count 32]

Data for the parity sample comes from the checkpoint's recorded data set (real test images) when
readable, else from random images."""
from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import json
import os
import warnings

import numpy as np
import torch

from .ablation import Scheme, ablate_index, ablation_count, encoded_channels
from .models import build_model
from .tfjs_export import export_tfjs

SCHEMA = "patchcert-model/1"


def sha256_files(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def export_onnx(model: torch.nn.Module, in_ch: int, height: int, width: int, path: str) -> None:
    model = model.eval()
    dummy = torch.zeros(2, in_ch, height, width)
    buf = io.BytesIO()
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # PyTorch 2.x: the TorchScript exporter (opset 13, same graph as on 1.13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, buf, opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True, export_params=True, **kw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def parity_sample(model, images: torch.Tensor, scheme: Scheme, encoding: str, count: int, seed: int = 0):
    """images: N x C x H x W float in [0,1]. Picks `count` images and an ablation index for each
    (spread over 0..K-1), returns (inputs NCHW float32, logits, image_ids, ablation_ids)."""
    n, _, h, w = images.shape
    k = ablation_count(scheme, h, w)
    g = torch.Generator().manual_seed(seed)
    img_ids = torch.randperm(n, generator=g)[:count] if n >= count else torch.randint(n, (count,), generator=g)
    abl_ids = torch.tensor([(i * k) // count if count <= k else i % k for i in range(count)], dtype=torch.int64)
    x = ablate_index(images[img_ids].float(), scheme, encoding, abl_ids).contiguous()
    with torch.no_grad():
        logits = model.eval()(x).float()
    return x, logits, img_ids.tolist(), abl_ids.tolist()


def write_parity(out_dir: str, x: torch.Tensor, logits: torch.Tensor, image_ids, ablation_ids, source: str):
    pdir = os.path.join(out_dir, "parity")
    os.makedirs(pdir, exist_ok=True)
    x.numpy().astype("<f4").tofile(os.path.join(pdir, "inputs.bin"))
    logits.numpy().astype("<f4").tofile(os.path.join(pdir, "logits.bin"))
    meta = {"count": int(x.shape[0]), "shape": list(x.shape), "layout": "nchw", "dtype": "float32",
            "numClasses": int(logits.shape[1]), "tolerance": 1e-4,
            "source": source, "imageIndices": list(map(int, image_ids)),
            "ablationIndices": list(map(int, ablation_ids)),
            "note": "inputs.bin: encoded ablations, float32 little-endian NCHW; logits.bin: PyTorch float32 "
                    "logits (count x numClasses). For NHWC backends transpose each input to H,W,C."}
    with open(os.path.join(pdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def export_model(model: torch.nn.Module, cfg: dict, out_dir: str, parity_images: torch.Tensor | None = None,
                 training: dict | None = None, tfjs: bool = True, parity_count: int = 32,
                 parity_source: str = "test images") -> dict:
    """cfg: arch, height, width, channels, encoding, scheme{kind,size,stride}, classes, name."""
    os.makedirs(out_dir, exist_ok=True)
    model = model.float().cpu().eval()
    h, w, c = cfg["height"], cfg["width"], cfg["channels"]
    scheme = Scheme(**cfg["scheme"])
    in_ch = encoded_channels(cfg["encoding"], c)
    formats = {}
    onnx_path = os.path.join(out_dir, "model.onnx")
    export_onnx(model, in_ch, h, w, onnx_path)
    formats["onnx"] = {"file": "model.onnx", "sha256": sha256_files([onnx_path]), "layout": "nchw",
                       "inputName": "input", "outputName": "logits"}
    if tfjs:
        tdir = os.path.join(out_dir, "tfjs")
        files = export_tfjs(model, h, w, in_ch, tdir, name=cfg.get("name", "model"))
        paths = [os.path.join(tdir, files["json"])] + [os.path.join(tdir, p) for p in files["weights"]]
        formats["tfjs"] = {"file": "tfjs/model.json", "sha256": sha256_files(paths), "layout": "nhwc"}
    if parity_images is None:
        parity_images = torch.rand(parity_count, c, h, w, generator=torch.Generator().manual_seed(1))
        parity_source = "uniform random images (seed 1)"
    x, logits, ids, abl = parity_sample(model, parity_images, scheme, cfg["encoding"], parity_count)
    write_parity(out_dir, x, logits, ids, abl, parity_source)
    manifest = {
        "schema": SCHEMA,
        "name": cfg.get("name", os.path.basename(os.path.abspath(out_dir))),
        "input": {"height": h, "width": w, "channels": c},
        "encoding": cfg["encoding"],
        "ablation": scheme.as_manifest(),
        "normalization": None,
        "classes": list(cfg["classes"]),
        "formats": formats,
        "training": {"architecture": cfg["arch"], **(training or {})},
    }
    with open(os.path.join(out_dir, "model.manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def torch_load(path: str, map_location="cpu"):
    """torch.load of our own checkpoints (PyTorch >= 2.6 defaults to weights_only=True)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except TypeError:  # PyTorch < 1.13 has no weights_only
        return torch.load(path, map_location=map_location)


def load_checkpoint(path: str):
    ck = torch_load(path)
    cfg = ck["config"]
    in_ch = encoded_channels(cfg["encoding"], cfg["channels"])
    model = build_model(cfg["arch"], in_ch, len(cfg["classes"]), cfg["height"], cfg["width"])
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m training.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a checkpoint written by training.train (last.pt or best.pt)")
    ap.add_argument("out_dir")
    ap.add_argument("--name", default=None)
    ap.add_argument("--no-tfjs", action="store_true", help="ONNX only (e.g. for ResNet-50 if TF.js is not wanted)")
    ap.add_argument("--parity-count", type=int, default=32)
    args = ap.parse_args(argv)
    model, ck = load_checkpoint(args.checkpoint)
    cfg = dict(ck["config"])
    if args.name:
        cfg["name"] = args.name
    images, source = None, "test images"
    try:
        from .data import load_dataset_from_config
        test = load_dataset_from_config(cfg["data"], split="test", limit=max(1000, args.parity_count))
        images = test.images_float(slice(0, len(test)))
        source = f"{cfg['data'].get('dataset', 'data set')} test images"
    except Exception as e:  # noqa: BLE001
        print(f"export: real test images unavailable ({e}); parity uses random images")
    m = export_model(model, cfg, args.out_dir, images, ck.get("training_summary"), tfjs=not args.no_tfjs,
                     parity_count=args.parity_count, parity_source=source)
    print(json.dumps(m["formats"], indent=1))


if __name__ == "__main__":
    main()
