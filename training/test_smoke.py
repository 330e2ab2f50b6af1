"""CI smoke test for training/ (plain asserts, < 60 s on 2 CPU cores):

  /usr/bin/python3 -m training.test_smoke

1. Random training ablations match the TypeScript geometry (core/ablation.ts): kept columns
   p..p+s-1 mod W for column bands, rows for row bands, the wrapped s x s block for blocks, positions
   on the stride grid; deterministic index -> position ordering (block: row-major); both encodings.
   The stored cases of test/vectors/ablation.json (also checked against core/ by
   test/core/vectors.test.ts) are reproduced exactly. When node and the repository's TypeScript
   compiler are present, the masks and encodings are also compared with core/ablation.ts +
   core/encoding.ts themselves (compiled to a temp folder).
2. For every scheme x encoding: 1 short epoch of training on a tiny generated data set (IDX, CIFAR-10
   binary and ImageFolder PNG formats), export (ONNX + TF.js + manifest + parity), and an ONNX vs
   PyTorch logits check (onnxruntime if Python has it, else training.onnx_eval).
3. --resume continues a run; ResNet-18/ResNet-50 export to ONNX agrees with PyTorch."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

from .ablation import (Scheme, ablate_index, ablation_count, ablation_position, encode, keep_mask,
                       random_positions)
from .export import export_model
from .torch_io import torch_load
from .models import build_model
from .parity import check as parity_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ geometry reference (transcribed from TS)

def ts_kept_mask(kind, size, stride, h, w, index):
    rows = [0] if kind == "column" else list(range(0, h, stride))
    cols = [0] if kind == "row" else list(range(0, w, stride))
    r0, c0 = rows[index // len(cols)], cols[index % len(cols)]
    row_len = h if kind == "column" else size
    col_len = w if kind == "row" else size
    rk, ck = np.zeros(h, np.uint8), np.zeros(w, np.uint8)
    for i in range(row_len):
        rk[(r0 + i) % h] = 1
    for i in range(col_len):
        ck[(c0 + i) % w] = 1
    return rk[:, None] & ck[None, :]


CASES = [("column", 2, 1, 8, 8), ("column", 3, 2, 7, 9), ("row", 3, 1, 6, 5), ("row", 2, 3, 10, 4),
         ("block", 3, 1, 6, 6), ("block", 4, 3, 7, 8), ("block", 2, 2, 5, 5), ("column", 4, 1, 32, 32)]


def test_geometry():
    for kind, s, t, h, w in CASES:
        sc = Scheme(kind, s, t)
        k = ablation_count(sc, h, w)
        idx = torch.arange(k)
        from .ablation import index_positions
        rows, cols = index_positions(sc, h, w, idx)
        got = keep_mask(sc, h, w, rows, cols)[:, 0].to(torch.uint8).numpy()
        for i in range(k):
            assert (got[i] == ts_kept_mask(kind, s, t, h, w, i)).all(), (kind, s, t, h, w, i)
            assert ablation_position(sc, h, w, i) == (int(rows[i]), int(cols[i]))
        # random positions lie on the stride grid and cover it; the masks they give are grid masks
        g = torch.Generator().manual_seed(0)
        rr, cc = random_positions(sc, 4000, h, w, "cpu", g)
        grid_r = set([0] if kind == "column" else range(0, h, t))
        grid_c = set([0] if kind == "row" else range(0, w, t))
        assert set(rr.tolist()) == grid_r and set(cc.tolist()) == grid_c, (kind, sorted(set(cc.tolist())))
        m = keep_mask(sc, h, w, rr, cc)[:, 0]
        per = {"column": h * s, "row": w * s, "block": s * s}[kind]
        assert (m.sum((1, 2)) == per).all()
    # explicit wrap-around: column band s=3 at p=6 on W=8 keeps columns 6, 7, 0
    m = ts_kept_mask("column", 3, 1, 4, 8, 6)
    assert m[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 1]
    m2 = keep_mask(Scheme("column", 3, 1), 4, 8, torch.tensor([0]), torch.tensor([6]))[0, 0]
    assert m2[0].tolist() == [1, 0, 0, 0, 0, 0, 1, 1] and (m2 == m2[0]).all()
    # encodings
    x = torch.rand(2, 3, 5, 5)
    mk = keep_mask(Scheme("block", 2, 1), 5, 5, torch.tensor([4, 0]), torch.tensor([4, 1]))
    e = encode(x, mk, "levine6")
    assert e.shape == (2, 6, 5, 5)
    assert torch.equal(e[:, :3], x * mk) and torch.equal(e[:, 3:], (1 - x) * mk)
    assert e[0, :, 4, 4].tolist() == x[0, :, 4, 4].tolist() + (1 - x[0, :, 4, 4]).tolist()
    assert e[0, :, 0, 0].tolist() == x[0, :, 0, 0].tolist() + (1 - x[0, :, 0, 0]).tolist()  # wrapped corner
    assert (e[0, :, 2, 2] == 0).all()
    e = encode(x, mk, "mask")
    assert e.shape == (2, 4, 5, 5) and torch.equal(e[:, 3:], mk) and torch.equal(e[:, :3], x * mk)


def test_shared_vectors():
    """test/vectors/ablation.json: the cases core/ (TypeScript) reproduces in test/core/vectors.test.ts;
    here training/ablation.py must give the same positions, kept masks and encoded values, bit for bit."""
    from .ablation import encode_kept, index_positions, kept_shape, kept_view
    with open(os.path.join(REPO, "test", "vectors", "ablation.json")) as f:
        v = json.load(f)
    assert v["schema"] == "patchcert-ablation-vectors/1", v["schema"]
    for g in v["geometry"]:
        sc = Scheme(g["scheme"]["kind"], g["scheme"]["size"], g["scheme"]["stride"])
        h, w = g["height"], g["width"]
        k = ablation_count(sc, h, w)
        assert k == g["count"], (g["name"], k)
        rows, cols = index_positions(sc, h, w, torch.arange(k))
        masks = keep_mask(sc, h, w, rows, cols)[:, 0].to(torch.uint8).numpy()
        for a in g["ablations"]:
            i = a["index"]
            assert list(ablation_position(sc, h, w, i)) == a["position"], (g["name"], i)
            assert [int(rows[i]), int(cols[i])] == a["position"], (g["name"], i)
            got = ["".join(str(int(b)) for b in row) for row in masks[i]]
            assert got == a["kept"], (g["name"], i, got, a["kept"])
    for e in v["encoding"]:
        sc = Scheme(e["scheme"]["kind"], e["scheme"]["size"], e["scheme"]["stride"])
        h, w, c = e["height"], e["width"], e["channels"]
        img = torch.tensor(e["image"], dtype=torch.float32).reshape(1, h, w, c).permute(0, 3, 1, 2)
        idx = torch.tensor([e["index"]])
        full = ablate_index(img, sc, e["encoding"], idx).numpy().reshape(-1)
        want = np.array(e["full"], dtype=np.float32)
        assert full.shape == want.shape and (full == want).all(), (e["name"], full.tolist(), e["full"])
        rows, cols = index_positions(sc, h, w, idx)
        assert [int(rows[0]), int(cols[0])] == e["position"], e["name"]
        assert list(kept_shape(sc, h, w)) == e["keptShape"], e["name"]
        kept = encode_kept(kept_view(img, sc, rows, cols), e["encoding"]).numpy().reshape(-1)
        want = np.array(e["kept"], dtype=np.float32)
        assert kept.shape == want.shape and (kept == want).all(), (e["name"], kept.tolist(), e["kept"])
    print(f"  {len(v['geometry'])} geometry and {len(v['encoding'])} encoding cases of test/vectors/ablation.json reproduced")


def test_geometry_against_typescript():
    """Compares with core/ablation.ts + core/encoding.ts compiled by the repo's tsc (skipped without node)."""
    tsc = os.path.join(REPO, "node_modules", "typescript", "bin", "tsc")
    if not shutil.which("node") or not os.path.exists(tsc):
        print("  (skipped: node or node_modules/typescript not available)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["node", tsc, "--outDir", tmp, "--rootDir", os.path.join(REPO, "core"), "--target", "ES2022",
                            "--module", "NodeNext", "--moduleResolution", "NodeNext", "--skipLibCheck",
                            os.path.join(REPO, "core", "ablation.ts"), os.path.join(REPO, "core", "encoding.ts")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"  (skipped: tsc failed: {r.stdout[-300:]} {r.stderr[-300:]})")
            return
        with open(os.path.join(tmp, "package.json"), "w") as f:
            f.write('{"type":"module"}')
        rng = np.random.default_rng(0)
        cases = []
        for kind, s, t, h, w in CASES:
            for c, enc in ((1, "levine6"), (3, "mask"), (3, "levine6")):
                img = rng.random((h, w, c), dtype=np.float32)
                cases.append({"kind": kind, "size": s, "stride": t, "h": h, "w": w, "c": c, "enc": enc,
                              "img": img.reshape(-1).tolist()})
        with open(os.path.join(tmp, "cases.json"), "w") as f:
            json.dump(cases, f)
        script = """
import fs from 'node:fs';
import { ablationCount, keptMask } from './ablation.js';
import { encodeAblationRange } from './encoding.js';
import { keptPositions } from './kept-view.js';
const cases = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = cases.map((c) => {
  const scheme = { kind: c.kind, size: c.size, stride: c.stride }, geom = { height: c.h, width: c.w };
  const K = ablationCount(scheme, geom);
  const masks = []; for (let k = 0; k < K; k++) masks.push(Array.from(keptMask(scheme, geom, k)));
  const spec = { scheme, geom, channels: c.c, encoding: c.enc, layout: 'nchw' };
  const enc = encodeAblationRange(spec, Float32Array.from(c.img), 0, K);
  const kept = encodeAblationRange({ ...spec, view: 'kept' }, Float32Array.from(c.img), 0, K);
  const pos = keptPositions(scheme, geom, 0, K);
  return { K, masks, enc: Buffer.from(enc.buffer).toString('base64'), kept: Buffer.from(kept.buffer).toString('base64'),
           pos: Buffer.from(pos.buffer).toString('base64') };
});
fs.writeFileSync(process.argv[3], JSON.stringify(out));
"""
        with open(os.path.join(tmp, "run.mjs"), "w") as f:
            f.write(script)
        subprocess.run(["node", os.path.join(tmp, "run.mjs"), os.path.join(tmp, "cases.json"),
                        os.path.join(tmp, "out.json")], check=True)
        with open(os.path.join(tmp, "out.json")) as f:
            ts = json.load(f)
    import base64
    for c, o in zip(cases, ts):
        sc = Scheme(c["kind"], c["size"], c["stride"])
        k = ablation_count(sc, c["h"], c["w"])
        assert k == o["K"], (c["kind"], k, o["K"])
        from .ablation import index_positions
        rows, cols = index_positions(sc, c["h"], c["w"], torch.arange(k))
        m = keep_mask(sc, c["h"], c["w"], rows, cols)[:, 0].to(torch.uint8).numpy().reshape(k, -1)
        assert (m == np.array(o["masks"], dtype=np.uint8)).all(), c["kind"]
        img = torch.tensor(c["img"], dtype=torch.float32).reshape(1, c["h"], c["w"], c["c"]).permute(0, 3, 1, 2)
        py = ablate_index(img.expand(k, -1, -1, -1), sc, c["enc"], torch.arange(k)).numpy().reshape(-1)
        tsv = np.frombuffer(base64.b64decode(o["enc"]), dtype="<f4")
        assert py.shape == tsv.shape and (py == tsv).all(), (c["kind"], c["enc"], float(np.abs(py - tsv).max()))
        from .ablation import index_ablated_inputs
        pk, pp = index_ablated_inputs(img.expand(k, -1, -1, -1), sc, c["enc"], "kept", torch.arange(k))
        tsk = np.frombuffer(base64.b64decode(o["kept"]), dtype="<f4")
        tsp = np.frombuffer(base64.b64decode(o["pos"]), dtype="<f4")
        assert pk.numel() == tsk.size and (pk.numpy().reshape(-1) == tsk).all(), ("kept view", c["kind"], c["enc"])
        assert (pp.numpy().reshape(-1) == tsp).all(), ("kept positions", c["kind"])
    print(f"  {len(cases)} scheme/encoding cases identical to core/ablation.ts + core/encoding.ts + core/kept-view.ts "
          f"(full and kept views, positions; bit-exact)")


# ------------------------------------------------------------------ tiny data sets on disk

def _synth(n, h, w, c, classes, seed):
    g = np.random.default_rng(seed)
    y = g.integers(0, classes, n)
    x = g.integers(0, 60, (n, h, w, c))
    for k in range(classes):  # class k: bright rows k, k+classes, ... and a colour tint
        x[y == k, k::classes, :, :] += 150
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.uint8)


def write_idx(folder, h=8, w=8, classes=3):
    os.makedirs(folder, exist_ok=True)
    for split, n, seed in (("train", 384, 0), ("t10k", 96, 1)):
        x, y = _synth(n, h, w, 1, classes, seed)
        with gzip.open(os.path.join(folder, f"{split}-images-idx3-ubyte.gz"), "wb") as f:
            f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, h, w) + x[..., 0].tobytes())
        with open(os.path.join(folder, f"{split}-labels-idx1-ubyte"), "wb") as f:  # uncompressed
            f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + y.tobytes())


def write_cifar_bin(folder, classes=4):
    os.makedirs(folder, exist_ok=True)
    for name, n, seed in [(f"data_batch_{i}.bin", 64, i) for i in range(1, 6)] + [("test_batch.bin", 64, 9)]:
        x, y = _synth(n, 32, 32, 3, classes, seed)
        rec = np.concatenate([y[:, None], x.transpose(0, 3, 1, 2).reshape(n, -1)], axis=1).astype(np.uint8)
        rec.tofile(os.path.join(folder, name))


def write_imagefolder(root, classes=3, h=8, w=8):
    from PIL import Image
    for split, n, seed in (("train", 150, 3), ("test", 48, 4)):
        x, y = _synth(n, h, w, 3, classes, seed)
        for i in range(n):
            d = os.path.join(root, split, f"class{y[i]}")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(x[i]).save(os.path.join(d, f"{i:04d}.png"))


# ------------------------------------------------------------------ train + export + parity

def test_train_export(tmp):
    from . import train as T
    idx, cif, imf = os.path.join(tmp, "idx"), os.path.join(tmp, "cifar-10-batches-bin"), os.path.join(tmp, "imf")
    write_idx(idx)
    write_cifar_bin(cif)
    write_imagefolder(imf)
    runs = [
        ("column", 2, 1, "levine6", ["--data-format", "idx", "--data", idx]),
        ("row", 3, 2, "mask", ["--data-format", "idx", "--data", idx]),
        ("block", 3, 1, "levine6", ["--data-format", "imagefolder", "--data", imf, "--cache", os.path.join(tmp, "imf-u8")]),
        ("column", 4, 1, "mask", ["--data-format", "cifar10-bin", "--data", tmp, "--train-limit", "128"]),
        ("block", 12, 5, "mask", ["--data-format", "cifar10-bin", "--data", cif, "--train-limit", "128"]),
        ("row", 2, 1, "levine6", ["--data-format", "imagefolder", "--data", imf]),
    ]
    for kind, s, t, enc, data in runs:
        name = f"{kind}{s}-{enc}-{data[1]}"
        out, run = os.path.join(tmp, "m-" + name), os.path.join(tmp, "r-" + name)
        man = T.main(["--dataset", "smoke", *data, "--arch", "tinycnn", "--scheme", kind, "--size", str(s),
                      "--stride", str(t), "--encoding", enc, "--epochs", "1", "--batch-size", "32", "--lr", "0.05",
                      "--run", run, "--export", out, "--progress-every", "1000"])
        assert man["schema"] == "patchcert-model/1" and man["encoding"] == enc
        assert man["ablation"] == {"kind": kind, "size": s, "stride": t}
        assert man["normalization"] is None and set(man["formats"]) == {"onnx", "tfjs"}
        assert man["training"]["epochs"] == 1 and 0 <= man["training"]["accuracy"]["ablatedTest"] <= 1
        with open(os.path.join(run, "log.jsonl")) as f:
            assert len(f.readlines()) == 1
        r = parity_check(out, verbose=False)
        assert not r["problems"], r
        print(f"  {name}: ablated acc {man['training']['accuracy']['ablatedTest']:.3f}, "
              f"ONNX vs PyTorch {r['onnx_max_abs_diff']:.2g} ({r['onnx_evaluator'].split(' (')[0]})")
    # a band-native (kept-view) model: ONNX only, two inputs, parity through both
    out, run = os.path.join(tmp, "m-kept"), os.path.join(tmp, "r-kept")
    man = T.main(["--dataset", "smoke", "--data-format", "imagefolder", "--data", imf, "--arch", "tinycnn",
                  "--input-view", "kept", "--scheme", "column", "--size", "4", "--encoding", "levine6", "--epochs", "1",
                  "--batch-size", "32", "--run", run, "--export", out, "--progress-every", "1000"])
    assert man["inputView"] == "kept" and set(man["formats"]) == {"onnx"}
    assert man["formats"]["onnx"]["positionName"] == "position" and man["training"]["position"] == "sincos"
    r = parity_check(out, verbose=False)
    assert not r["problems"], r
    print(f"  column4 kept view: ONNX vs PyTorch {r['onnx_max_abs_diff']:.2g}")
    # resume: stop after 1 of 2 epochs, continue
    run = os.path.join(tmp, "r-resume")
    T.main(["--dataset", "smoke", "--data-format", "idx", "--data", idx, "--arch", "tinycnn", "--epochs", "2",
            "--batch-size", "64", "--run", run, "--max-epochs-now", "1", "--progress-every", "1000"])
    ck = torch_load(os.path.join(run, "last.pt"))
    assert ck["epoch"] == 0
    T.main(["--resume", run, "--max-epochs-now", "5"])
    ck = torch_load(os.path.join(run, "last.pt"))
    assert ck["epoch"] == 1 and len(ck["history"]) == 2
    with open(os.path.join(run, "log.jsonl")) as f:
        assert [json.loads(l)["epoch"] for l in f] == [1, 2]


def test_resnet_export(tmp):
    for arch, hw, c, enc in (("resnet18", 32, 3, "levine6"), ("resnet50", 64, 3, "mask")):
        torch.manual_seed(0)
        in_ch = 2 * c if enc == "levine6" else c + 1
        m = build_model(arch, in_ch, 10, hw, hw)
        # non-trivial BN statistics so folding is exercised
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.1, 0.1)
        cfg = {"arch": arch, "height": hw, "width": hw, "channels": c, "encoding": enc,
               "scheme": {"kind": "column", "size": 4, "stride": 1}, "classes": [str(i) for i in range(10)],
               "name": arch}
        out = os.path.join(tmp, arch)
        export_model(m, cfg, out, None, {"dataset": "none"}, tfjs=(arch == "resnet18"), parity_count=4)
        r = parity_check(out, tol=2e-4, verbose=False)
        assert not r["problems"], r
        print(f"  {arch} ({hw}x{hw}) export: ONNX vs PyTorch {r['onnx_max_abs_diff']:.2g}")


def test_budget_snapshot_fp16(tmp):
    from . import train as T
    from .export import onnx_state_dict, tfjs_from_model
    assert T.epochs_for_budget(100.0, 2.0, 2, 200) == 51  # 98 s left after the 2 s epoch
    assert T.epochs_for_budget(100.0, 2.0, 2, 30) == 30
    assert T.epochs_for_budget(1.0, 2.0, 2, 200) == 3  # budget spent: one last (low learning rate) epoch
    assert T.epochs_for_budget(100.0, 2.0, 2, 2) == 2  # decided on the last planned epoch: never more
    idx = os.path.join(tmp, "idx-b")
    write_idx(idx)
    run, snaps = os.path.join(tmp, "r-budget"), os.path.join(tmp, "snaps")
    T.main(["--dataset", "smoke", "--data-format", "idx", "--data", idx, "--arch", "tinycnn", "--epochs", "50",
            "--batch-size", "64", "--warmup-epochs", "2", "--time-budget", "0.001", "--run", run,
            "--snapshot-dir", snaps, "--snapshot-part-mib", "0.004", "--progress-every", "1000", "--name", "tiny"])
    ck = torch_load(os.path.join(run, "last.pt"))
    assert ck["args"]["epochs"] == 3 and len(ck["history"]) == 3, (ck["args"]["epochs"], len(ck["history"]))
    assert ck["history"][-1]["lr"] < 0.1 * ck["args"]["lr"]
    parts = sorted(f for f in os.listdir(snaps) if f.startswith("tiny.fp16.pt.part"))
    assert len(parts) >= 2, parts
    joined = b"".join(open(os.path.join(snaps, f"tiny.fp16.pt.part{i}"), "rb").read() for i in range(len(parts)))
    assert joined == open(os.path.join(run, "snapshot.fp16.pt"), "rb").read()
    snap = torch_load(os.path.join(run, "snapshot.fp16.pt"))
    assert snap["epoch"] == 2 and all(v.dtype != torch.float32 for v in snap["model"].values())
    # float16 storage: exact for fp16 weights, refused for others
    torch.manual_seed(1)
    m = build_model("tinycnn", 2, 10, 28, 28)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_var.uniform_(0.5, 1.5)
    cfg = {"arch": "tinycnn", "height": 28, "width": 28, "channels": 1, "encoding": "levine6",
           "scheme": {"kind": "column", "size": 2, "stride": 1}, "classes": [str(i) for i in range(10)],
           "name": "tiny16"}
    try:
        export_model(m, cfg, os.path.join(tmp, "m-f16-bad"), None, {}, tfjs=False, weights="float16")
        raise AssertionError("float16 storage of float32 weights was not refused")
    except ValueError as e:
        assert "float16 storage would round" in str(e)
    with torch.no_grad():
        for v in m.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    out32, out16 = os.path.join(tmp, "m-f32"), os.path.join(tmp, "m-f16")
    export_model(m, cfg, out32, None, {}, tfjs=False)
    man = export_model(m, cfg, out16, None, {}, tfjs=False, weights="float16")
    import onnx
    g = onnx.load(os.path.join(out16, "model.onnx"))
    assert any(n.op_type == "Cast" for n in g.graph.node) and any(n.op_type == "BatchNormalization" for n in g.graph.node)
    assert all(i.data_type == onnx.TensorProto.FLOAT16 for i in g.graph.initializer
               if i.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16))
    assert "float16" in man["training"]["storedWeights"]
    r = parity_check(out16, verbose=False)
    assert not r["problems"] and r["onnx_max_abs_diff"] <= 1e-5, r
    sd = onnx_state_dict(os.path.join(out16, "model.onnx"))
    for k, v in m.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(sd[k], v), k
    man = tfjs_from_model(out16)
    assert "tfjs" in man["formats"] and os.path.exists(os.path.join(out16, "tfjs", "model.json"))
    r = parity_check(out16, verbose=False)  # re-reads the manifest: the tfjs sha256 must match too
    assert not r["problems"], r
    print(f"  time budget -> {ck['args']['epochs']} epochs; snapshot in {len(parts)} parts; float16 model.onnx "
          f"{os.path.getsize(os.path.join(out16, 'model.onnx'))} bytes vs float32 "
          f"{os.path.getsize(os.path.join(out32, 'model.onnx'))}")


def test_ablation_per_batch():
    """--ablation-per batch: one band position for the whole batch; per image: positions vary."""
    from .ablation import Scheme, random_ablate
    x = torch.rand(64, 3, 32, 32)
    s = Scheme("column", 4, 1)
    kept = lambda xa: (xa[:, :3] + xa[:, 3:]).abs().sum(dim=(1, 2)) > 0  # B x W: columns kept
    g = torch.Generator().manual_seed(3)
    per_batch = kept(random_ablate(x, s, "levine6", generator=g, per_batch=True))
    assert (per_batch == per_batch[0]).all() and per_batch[0].sum() == 4
    per_image = kept(random_ablate(x, s, "levine6", generator=g))
    assert (per_image.sum(1) == 4).all() and not (per_image == per_image[0]).all()


def test_jpeg_idx(tmp):
    """The JPEG round trip keeps labels and shapes, changes pixels a little, and reads back as IDX."""
    from . import jpeg_idx
    from .data import load_dataset_from_config, resolve_config
    src, dst = os.path.join(tmp, "jsrc"), os.path.join(tmp, "jdst")
    write_idx(src, h=16, w=16)
    jpeg_idx.main([src, dst, "--quality", "50"])
    for split in ("train", "test"):
        a = load_dataset_from_config(resolve_config("jpeg-src", "idx", src), split)
        b = load_dataset_from_config(resolve_config("jpeg-dst", "idx", dst), split)
        assert a.images.shape == b.images.shape and torch.equal(a.labels, b.labels)
        d = (a.images.int() - b.images.int()).abs()
        assert 0 < d.float().mean() < 40, f"{split}: mean change {d.float().mean()}"
    bad = os.path.join(tmp, "jbad")
    os.makedirs(bad)
    with open(os.path.join(bad, "train-images-idx3-ubyte"), "wb") as f:
        f.write(b"\1" * 32)
    shutil.copyfile(os.path.join(src, "train-labels-idx1-ubyte"), os.path.join(bad, "train-labels-idx1-ubyte"))
    try:
        jpeg_idx.main([bad, os.path.join(tmp, "jbad-out")])
        raise AssertionError("a file with the wrong magic was accepted")
    except ValueError as e:
        assert "train-images-idx3-ubyte" in str(e)


def main():
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    tests = [("geometry", test_geometry), ("shared vectors (test/vectors/ablation.json)", test_shared_vectors),
             ("geometry vs TypeScript", test_geometry_against_typescript),
             ("ablation per batch", test_ablation_per_batch)]
    for name, fn in tests:
        fn()
        print(f"ok {name} ({time.time() - t0:.1f}s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        import contextlib
        import io
        for name, fn in (("train/export/parity", test_train_export), ("resnet export", test_resnet_export),
                         ("time budget, fp16 snapshots and float16 storage", test_budget_snapshot_fp16),
                         ("JPEG round trip of an IDX set", test_jpeg_idx)):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                fn(tmp)
            print("\n".join(l for l in buf.getvalue().splitlines() if l.startswith("  ")))
            print(f"ok {name} ({time.time() - t0:.1f}s)", flush=True)
    print(f"all training smoke tests passed in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
