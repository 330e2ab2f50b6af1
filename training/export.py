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

from .ablation import Scheme, ablation_count, encoded_channels, index_ablated_inputs, kept_shape
from .models import build_for_config, build_model
from .tfjs_export import export_tfjs
from .torch_io import torch_load

SCHEMA = "patchcert-model/1"


def sha256_files(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


FP16_SUFFIX = "__fp16"


def export_onnx(model: torch.nn.Module, in_ch: int, height: int, width: int, path: str,
                weights: str = "float32", kept: bool = False) -> None:
    """weights="float16": BatchNorm is kept as its own nodes (not folded into the convolutions) so every
    stored tensor is one of the model's own, each float tensor is stored as float16 and cast back to
    float32 by a Cast node at load; the network computes in float32. Use it for weights that are
    float16 values already (a training snapshot's), so the stored model equals the PyTorch one.
    kept=True: a kept-view model (height x width = the kept view) with a second input `position`
    (N x 2 float32, the ablation's row and col)."""
    if weights not in ("float32", "float16"):
        raise ValueError(f'weights must be "float32" or "float16", got {weights!r}')
    model = model.eval()
    dummy = (torch.zeros(2, in_ch, height, width),) + ((torch.zeros(2, 2),) if kept else ())
    names = ["input", "position"] if kept else ["input"]
    buf = io.BytesIO()
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # PyTorch 2.x: the TorchScript exporter (opset 13, same graph as on 1.13)
    if weights == "float16":
        kw["training"] = torch.onnx.TrainingMode.PRESERVE  # eval mode, but no Conv+BN fusion
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, dummy, buf, opset_version=13, input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: {0: "batch"} for n in names}, "logits": {0: "batch"}},
                          do_constant_folding=True, export_params=True, **kw)
    data = buf.getvalue()
    if weights == "float16":
        data = store_float16(data)
    with open(path, "wb") as f:
        f.write(data)


def store_float16(onnx_bytes: bytes) -> bytes:
    """Every float32 initializer X becomes a float16 initializer X__fp16 plus a Cast(to=float) node
    producing X, so the graph is unchanged but the file is half the size. Refuses tensors that float16
    cannot hold exactly (they would change the model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = onnx.load_from_string(onnx_bytes)
    casts, inexact = [], []
    for init in g.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        h = a.astype(np.float16)
        if not np.array_equal(h.astype(np.float32), a):
            inexact.append(init.name)
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, name + FP16_SUFFIX))
        casts.append(helper.make_node("Cast", [name + FP16_SUFFIX], [name], to=TensorProto.FLOAT,
                                      name=f"cast_{name}"))
    if inexact:
        raise ValueError(f"float16 storage would round {len(inexact)} tensor(s) ({', '.join(inexact[:5])}"
                         f"{', ...' if len(inexact) > 5 else ''}); round the weights to float16 first")
    nodes = list(g.graph.node)
    del g.graph.node[:]
    g.graph.node.extend(casts + nodes)
    onnx.checker.check_model(g)
    return g.SerializeToString()


def onnx_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The initializers of an ONNX file exported with weights="float16" (or float32 with BatchNorm
    kept), keyed by the PyTorch state_dict names they were exported under, as float32 tensors."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(path)
    out = {}
    for init in g.graph.initializer:
        name = init.name[:-len(FP16_SUFFIX)] if init.name.endswith(FP16_SUFFIX) else init.name
        a = numpy_helper.to_array(init)
        out[name] = torch.from_numpy(a.astype(np.float32) if a.dtype == np.float16 else a.copy())
    # the exporter stores equal tensors once and names the others through Identity nodes
    for node in g.graph.node:
        if node.op_type == "Identity" and node.input[0] in out and node.output[0] not in out:
            out[node.output[0]] = out[node.input[0]]
    return out


def parity_sample(model, images: torch.Tensor, scheme: Scheme, encoding: str, count: int, seed: int = 0,
                  view: str = "full"):
    """images: N x C x H x W float in [0,1]. Picks `count` images and an ablation index for each
    (spread over 0..K-1), returns (inputs NCHW float32, logits, image_ids, ablation_ids, positions
    N x 2 or None)."""
    n, _, h, w = images.shape
    k = ablation_count(scheme, h, w)
    g = torch.Generator().manual_seed(seed)
    img_ids = torch.randperm(n, generator=g)[:count] if n >= count else torch.randint(n, (count,), generator=g)
    abl_ids = torch.tensor([(i * k) // count if count <= k else i % k for i in range(count)], dtype=torch.int64)
    inputs = tuple(t.contiguous() for t in index_ablated_inputs(images[img_ids].float(), scheme, encoding, view, abl_ids))
    with torch.no_grad():
        logits = model.eval()(*inputs).float()
    return inputs[0], logits, img_ids.tolist(), abl_ids.tolist(), (inputs[1] if view == "kept" else None)


def write_parity(out_dir: str, x: torch.Tensor, logits: torch.Tensor, image_ids, ablation_ids, source: str,
                 positions: torch.Tensor | None = None):
    pdir = os.path.join(out_dir, "parity")
    os.makedirs(pdir, exist_ok=True)
    x.numpy().astype("<f4").tofile(os.path.join(pdir, "inputs.bin"))
    if positions is not None:
        positions.numpy().astype("<f4").tofile(os.path.join(pdir, "positions.bin"))
    logits.numpy().astype("<f4").tofile(os.path.join(pdir, "logits.bin"))
    meta = {"count": int(x.shape[0]), "shape": list(x.shape), "layout": "nchw", "dtype": "float32",
            "numClasses": int(logits.shape[1]), "tolerance": 1e-4,
            "source": source, "imageIndices": list(map(int, image_ids)),
            "ablationIndices": list(map(int, ablation_ids)),
            "note": "inputs.bin: encoded ablations, float32 little-endian NCHW; logits.bin: PyTorch float32 "
                    "logits (count x numClasses). For NHWC backends transpose each input to H,W,C."}
    if positions is not None:
        meta["positions"] = "positions.bin"
        meta["note"] += " positions.bin: the kept-view model's position input (count x 2 float32: row, col)."
    with open(os.path.join(pdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def export_model(model: torch.nn.Module, cfg: dict, out_dir: str, parity_images: torch.Tensor | None = None,
                 training: dict | None = None, tfjs: bool = True, parity_count: int = 32,
                 parity_source: str = "test images", weights: str = "float32") -> dict:
    """cfg: arch, height, width, channels, encoding, scheme{kind,size,stride}, classes, name."""
    os.makedirs(out_dir, exist_ok=True)
    model = model.float().cpu().eval()
    h, w, c = cfg["height"], cfg["width"], cfg["channels"]
    scheme = Scheme(**cfg["scheme"])
    in_ch = encoded_channels(cfg["encoding"], c)
    view = cfg.get("view", "full")
    kept = view == "kept"
    formats = {}
    onnx_path = os.path.join(out_dir, "model.onnx")
    kh, kw = kept_shape(scheme, h, w) if kept else (h, w)
    export_onnx(model, in_ch, kh, kw, onnx_path, weights, kept=kept)
    formats["onnx"] = {"file": "model.onnx", "sha256": sha256_files([onnx_path]), "layout": "nchw",
                       "inputName": "input", "outputName": "logits", **({"positionName": "position"} if kept else {})}
    if tfjs and kept:
        raise ValueError("kept-view models export to ONNX only (TF.js models take a single input)")
    if tfjs:
        tdir = os.path.join(out_dir, "tfjs")
        files = export_tfjs(model, h, w, in_ch, tdir, name=cfg.get("name", "model"))
        paths = [os.path.join(tdir, files["json"])] + [os.path.join(tdir, p) for p in files["weights"]]
        formats["tfjs"] = {"file": "tfjs/model.json", "sha256": sha256_files(paths), "layout": "nhwc"}
    if parity_images is None:
        parity_images = torch.rand(parity_count, c, h, w, generator=torch.Generator().manual_seed(1))
        parity_source = "uniform random images (seed 1)"
    x, logits, ids, abl, pos = parity_sample(model, parity_images, scheme, cfg["encoding"], parity_count, view=view)
    write_parity(out_dir, x, logits, ids, abl, parity_source, pos)
    manifest = {
        "schema": SCHEMA,
        "name": cfg.get("name", os.path.basename(os.path.abspath(out_dir))),
        "input": {"height": h, "width": w, "channels": c},
        "encoding": cfg["encoding"],
        "ablation": scheme.as_manifest(),
        **({"inputView": "kept"} if kept else {}),
        "normalization": None,
        "classes": list(cfg["classes"]),
        "formats": formats,
        "training": {"architecture": cfg["arch"], **({"position": cfg.get("position", "sincos")} if kept else {}),
                     **(training or {}),
                     **({"storedWeights": "float16 in model.onnx (cast to float32 at load; computation is "
                                          "float32)"} if weights == "float16" else {})},
    }
    with open(os.path.join(out_dir, "model.manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return manifest


def load_checkpoint(path: str):
    ck = torch_load(path)
    cfg = ck["config"]
    model = build_for_config(cfg)
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def summary_from_snapshot(ck: dict, checkpoint: str) -> dict | None:
    """Manifest `training` record for a checkpoint or fp16 snapshot that carries its history."""
    if ck.get("training_summary"):
        return ck["training_summary"]
    hist, a = ck.get("history") or [], ck.get("args") or {}
    if not hist:
        return None
    last = hist[-1]
    return {"dataset": (ck.get("config") or {}).get("data", {}).get("dataset"), "epochs": last["epoch"],
            "seconds": last.get("elapsed_seconds"), "hardware": ck.get("hardware"),
            "accuracy": {"ablatedTest": round(last["val_acc_ablated"], 4), "testImages": last.get("val_n"),
                         "note": "one uniformly random ablation per test image (fixed seed), argmax, "
                                 "bf16 autocast, at the end of the last epoch"},
            "optimizer": f"SGD momentum {a.get('momentum')} wd {a.get('weight_decay')} lr {a.get('lr')} "
                         f"{a.get('sched')} warm-up {a.get('warmup_epochs')} epochs"
                         f"{' nesterov' if a.get('nesterov') else ''}",
            "batchSize": a.get("batch_size"), "augment": a.get("augment") or "crop-flip", "seed": a.get("seed"),
            "command": "python3 -m training.train " + " ".join(ck.get("argv") or []),
            "torch": ck.get("torch"), "checkpoint": os.path.basename(checkpoint)}


def tfjs_from_model(model_dir: str) -> dict:
    """Adds a TF.js format to a committed model whose model.onnx keeps its BatchNorm nodes (the
    float16-stored models): the PyTorch network is rebuilt from the ONNX initializers."""
    mpath = os.path.join(model_dir, "model.manifest.json")
    with open(mpath) as f:
        man = json.load(f)
    arch = (man.get("training") or {}).get("architecture")
    if not arch:
        raise SystemExit(f"{mpath}: training.architecture is not recorded; cannot rebuild the network")
    inp = man["input"]
    in_ch = encoded_channels(man["encoding"], inp["channels"])
    model = build_model(arch, in_ch, len(man["classes"]), inp["height"], inp["width"])
    sd = onnx_state_dict(os.path.join(model_dir, man["formats"]["onnx"]["file"]))
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]  # unused in eval
    if missing:
        raise SystemExit(f"{model_dir}/model.onnx does not hold {len(missing)} of the network's tensors "
                         f"({', '.join(missing[:4])}); only models exported with float16 storage can be rebuilt")
    model.load_state_dict({k: sd[k].to(own[k].dtype) if k in sd else own[k] for k in own})
    tdir = os.path.join(model_dir, "tfjs")
    files = export_tfjs(model.eval(), inp["height"], inp["width"], in_ch, tdir, name=man["name"])
    paths = [os.path.join(tdir, files["json"])] + [os.path.join(tdir, p) for p in files["weights"]]
    man["formats"]["tfjs"] = {"file": "tfjs/model.json", "sha256": sha256_files(paths), "layout": "nhwc"}
    with open(mpath, "w") as f:
        json.dump(man, f, indent=2)
        f.write("\n")
    return man


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m training.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="a checkpoint written by training.train (last.pt, or an "
                                                  "fp16 snapshot NAME.fp16.pt)")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--name", default=None)
    ap.add_argument("--no-tfjs", action="store_true", help="ONNX only (e.g. for ResNet-50 if TF.js is not wanted)")
    ap.add_argument("--weights", default="float32", choices=["float32", "float16"],
                    help="float16: store weights as float16 in model.onnx (exact for fp16 snapshots; half the size)")
    ap.add_argument("--round-fp16", action="store_true",
                    help="round the checkpoint's float weights to float16 first (with --weights float16: half-size "
                         "model.onnx that equals the rounded network exactly; the parity sample is the rounded one's)")
    ap.add_argument("--parity-count", type=int, default=32)
    ap.add_argument("--tfjs-from-model", metavar="MODEL_DIR", default=None,
                    help="add the TF.js format to a committed float16-stored model (rebuilt from its model.onnx)")
    args = ap.parse_args(argv)
    if args.tfjs_from_model:
        m = tfjs_from_model(args.tfjs_from_model)
        print(json.dumps(m["formats"], indent=1))
        return
    if not args.checkpoint or not args.out_dir:
        ap.error("give CHECKPOINT and OUT_DIR (or --tfjs-from-model MODEL_DIR)")
    model, ck = load_checkpoint(args.checkpoint)
    if args.round_fp16:
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.is_floating_point():
                    t.copy_(t.half().float())
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
    m = export_model(model, cfg, args.out_dir, images, summary_from_snapshot(ck, args.checkpoint),
                     tfjs=not args.no_tfjs, parity_count=args.parity_count, parity_source=source,
                     weights=args.weights)
    print(json.dumps(m["formats"], indent=1))


if __name__ == "__main__":
    main()
