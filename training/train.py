"""Train an ablation-trained base classifier for (De)Randomized Smoothing.

Each image of each step gets a fresh uniformly random ablation (column/row band or block on the
stride grid, wrapping), encoded as levine6 or mask, exactly as core/ablation.ts and core/encoding.ts
define them. Validation accuracy is measured on ablated test images (one random ablation per image,
the same fixed positions every epoch).

Examples (from the repository root; see training/README.md for every shipped model):

  /usr/bin/python3 -m training.train --dataset fashion-mnist --arch smallcnn --scheme column --size 2 \\
      --encoding levine6 --epochs 12 --threads 2 --run training/runs/fmnist-column2 \\
      --export models/fashion-mnist-column2
  /usr/bin/python3 -m training.train --resume training/runs/fmnist-column2      # continue a run
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time

import torch
import torch.nn.functional as F

from .ablation import (ENCODINGS, KINDS, VIEWS, Scheme, ablated_inputs,
                       random_ablated_inputs, random_positions)
from .data import PRESETS, ImageSet, StreamingImageFolder, load_dataset_from_config, resolve_config
from .torch_io import torch_load
from .models import ARCHS, POSITIONS, build_for_config


def build_parser(suppress: bool = False) -> argparse.ArgumentParser:
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    ap = argparse.ArgumentParser(prog="python3 -m training.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 argument_default=argparse.SUPPRESS if suppress else None)
    a = ap.add_argument
    a("--dataset", default=d(None), help=f"named data set ({', '.join(PRESETS)}) or a free name with --data-format")
    a("--data", default=d(None), help="data path (overrides the preset's)")
    a("--data-format", default=d(None), choices=["idx", "cifar10-bin", "imagefolder"])
    a("--cache", default=d(None), help="cache prefix for decoded uint8 tensors (PREFIX-train.pt, PREFIX-test.pt)")
    a("--resize", type=int, default=d(None), help="imagefolder: resize shorter side (ImageNet: 256)")
    a("--crop", type=int, default=d(None), help="imagefolder: centre crop side (ImageNet: 224)")
    a("--stream", action="store_true", default=d(None), help="decode images on the fly (ImageNet scale)")
    a("--workers", type=int, default=d(8), help="DataLoader workers when streaming")
    a("--arch", default=d("smallcnn"), choices=ARCHS)
    a("--scheme", default=d("column"), choices=KINDS)
    a("--size", type=int, default=d(2), help="band width / block side s")
    a("--stride", type=int, default=d(1), help="ablation position stride t")
    a("--encoding", default=d("levine6"), choices=ENCODINGS)
    a("--input-view", default=d("full"), choices=VIEWS,
      help="full: the whole encoded H x W ablation; kept: only the kept band/block plus its position "
           "(a band-native model, ONNX only; see KeptViewNet)")
    a("--position", default=d("sincos"), choices=POSITIONS, help="kept view: how the position enters the model")
    a("--epochs", type=int, default=d(10))
    a("--batch-size", type=int, default=d(128))
    a("--lr", type=float, default=d(0.1))
    a("--momentum", type=float, default=d(0.9))
    a("--weight-decay", type=float, default=d(5e-4))
    a("--nesterov", action="store_true", default=d(False))
    a("--bn-weight-decay", action="store_true", default=d(False),
      help="weight decay on biases and BatchNorm parameters too (the authors' code); default: weights only")
    a("--ablation-per", default=d("image"), choices=["image", "batch"],
      help="training ablation position: fresh per image, or one per batch (the authors' reuse_noise=True)")
    a("--sched", default=d("cosine"), choices=["cosine", "step"])
    a("--milestones", default=d("0.5,0.75"), help="step schedule: epochs (or fractions of --epochs) to x0.1")
    a("--warmup-epochs", type=float, default=d(0.0))
    a("--augment", default=d(None), choices=["none", "light", "crop-flip", "imagenet"],
      help="default: crop-flip for 3-channel data, light (random crop pad 2) for 1-channel; imagenet when streaming")
    a("--pad", type=int, default=d(4), help="random-crop padding for crop-flip")
    a("--seed", type=int, default=d(0))
    a("--threads", type=int, default=d(None), help="torch CPU threads (default: torch's)")
    a("--device", default=d("auto"), help="auto, cpu, cuda, cuda:N")
    a("--no-bf16", action="store_true", default=d(False), help="disable bf16 autocast on CUDA")
    a("--channels-last", action="store_true", default=d(False), help="channels_last memory format (CUDA, and CPU where it is ~15%% faster for small CNNs)")
    a("--train-limit", type=int, default=d(None))
    a("--val-limit", type=int, default=d(None), help="ablated validation on the first N test images per epoch")
    a("--run", default=d(None), help="run folder: last.pt (every epoch), log.jsonl, args.json")
    a("--resume", default=d(None), help="run folder or checkpoint to continue; stored arguments are reused, "
                                         "flags given now override them (e.g. --epochs, --device)")
    a("--export", default=d(None), help="after training, export ONNX + TF.js + manifest + parity here")
    a("--no-tfjs", action="store_true", default=d(False))
    a("--parity-count", type=int, default=d(32), help="encoded test ablations in the export's parity sample")
    a("--name", default=d(None), help="model name in the manifest")
    a("--progress-every", type=float, default=d(30.0), help="seconds between progress lines")
    a("--max-epochs-now", type=int, default=d(None), help="stop after this many epochs in this invocation (resume later)")
    a("--time-budget", type=float, default=d(None),
      help="seconds of training for this invocation: after the first epoch, --epochs is lowered to what fits "
           "(the schedule then follows that epoch count; the log records it, so --epochs N reproduces it)")
    a("--snapshot-dir", default=d(None),
      help="after every epoch write NAME.fp16.pt here (fp16 weights + config + history) in parts of at most "
           "--snapshot-part-mib MiB (NAME.fp16.pt.part0, part1, ...; join with cat)")
    a("--checkpoint-every", type=int, default=d(1), help="write last.pt (and the snapshot) every N epochs and at the end")
    a("--snapshot-part-mib", type=float, default=d(15.0))
    return ap


def autocast(amp: bool):
    """bf16 autocast on CUDA; a no-op elsewhere (CPU builds of torch 1.13 reject even a disabled CUDA autocast)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()


def hardware_string(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cpu = platform.processor() or "cpu"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {threads} thread(s), torch {torch.__version__}"


# ------------------------------------------------------------------ augmentation (batched tensor ops)

def random_crop(x: torch.Tensor, out_h: int, out_w: int, pad: int, gen=None) -> torch.Tensor:
    """x: B x C x H x W; zero-pad by `pad` then crop out_h x out_w at a random offset per image."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    b, _, h, w = x.shape
    oy = torch.randint(h - out_h + 1, (b,), device=x.device, generator=gen)
    ox = torch.randint(w - out_w + 1, (b,), device=x.device, generator=gen)
    rows = (oy[:, None] + torch.arange(out_h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(out_w, device=x.device))[:, None, None, :]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[bi, ci, rows, cols]


def random_flip(x: torch.Tensor, gen=None) -> torch.Tensor:
    flip = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augment(x: torch.Tensor, mode: str, pad: int, out_hw=None) -> torch.Tensor:
    h, w = out_hw or x.shape[2:]
    if mode == "none":
        return x
    if mode == "light":
        return random_crop(x, h, w, 2)
    if mode == "crop-flip":
        return random_flip(random_crop(x, h, w, pad))
    if mode == "imagenet":  # decoded larger (resize x resize), random crop to crop x crop + flip
        return random_flip(random_crop(x, h, w, 0))
    raise ValueError(mode)


# ------------------------------------------------------------------ helpers

def lr_at(args, epoch_float: float) -> float:
    if args.warmup_epochs and epoch_float < args.warmup_epochs:
        return args.lr * (epoch_float + 1e-9) / args.warmup_epochs
    if args.sched == "cosine":
        return 0.5 * args.lr * (1 + math.cos(math.pi * min(epoch_float / args.epochs, 1.0)))
    ms = [float(m) for m in str(args.milestones).split(",") if m]
    ms = [m * args.epochs if m < 1 else m for m in ms]
    return args.lr * (0.1 ** sum(epoch_float >= m for m in ms))


@torch.no_grad()
def evaluate(model, data: ImageSet, scheme: Scheme, encoding: str, device, batch: int, amp: bool,
             limit=None, seed: int = 12345, channels_last=False, view: str = "full") -> dict:
    """Loss/accuracy on ablated images: one random ablation per image, positions fixed by `seed`."""
    model.eval()
    n = len(data) if not limit else min(limit, len(data))
    _, h, w, _ = data.images.shape
    # positions drawn once on the CPU for the whole set: the figure depends on the seed only, not on
    # the batch size or the device
    rows, cols = random_positions(scheme, len(data), h, w, "cpu", torch.Generator().manual_seed(seed))
    correct, loss_sum = 0, 0.0
    for i in range(0, n, batch):
        j = min(n, i + batch)
        x = data.images_float(slice(i, j)).to(device, non_blocking=True)
        y = data.labels[i:j].to(device)
        xa = ablated_inputs(x, scheme, encoding, view, rows[i:j].to(device), cols[i:j].to(device))
        if channels_last:
            xa = (xa[0].contiguous(memory_format=torch.channels_last),) + xa[1:]
        with autocast(amp):
            out = model(*xa)
        out = out.float()
        loss_sum += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
    return {"loss": loss_sum / n, "acc": correct / n, "n": n}


@torch.no_grad()
def evaluate_stream(model, loader, scheme, encoding, device, amp, seed=12345, channels_last=False, view="full") -> dict:
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    correct, loss_sum, n = 0, 0.0, 0
    for xb, yb in loader:
        x = xb.permute(0, 3, 1, 2).float().div_(255)
        xa = tuple(t.to(device, non_blocking=True) for t in random_ablated_inputs(x, scheme, encoding, view, generator=gen))
        if channels_last:
            xa = (xa[0].contiguous(memory_format=torch.channels_last),) + xa[1:]
        y = yb.to(device)
        with autocast(amp):
            out = model(*xa).float()
        loss_sum += F.cross_entropy(out, y, reduction="sum").item()
        correct += (out.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": loss_sum / n, "acc": correct / n, "n": n}


def save_atomic(obj, path: str):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fp16_state_dict(model: torch.nn.Module) -> dict:
    """Weights rounded to float16 (integer buffers kept): the form committed models are stored in."""
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu())
            for k, v in model.state_dict().items()}


def write_snapshot(snap: dict, out_dir: str, name: str, part_mib: float) -> list[str]:
    """torch.save `snap` to out_dir/name.fp16.pt (whole) and, when larger than part_mib, also as
    name.fp16.pt.partK files (for transports with a per-file size limit); stale parts are removed."""
    os.makedirs(out_dir, exist_ok=True)
    buf = __import__("io").BytesIO()
    torch.save(snap, buf)
    data = buf.getvalue()
    limit = int(part_mib * 1024 * 1024)
    base = os.path.join(out_dir, f"{name}.fp16.pt")
    for f in os.listdir(out_dir):
        if f.startswith(f"{name}.fp16.pt"):
            os.remove(os.path.join(out_dir, f))
    paths = []
    chunks = [data] if len(data) <= limit else [data[i:i + limit] for i in range(0, len(data), limit)]
    for i, chunk in enumerate(chunks):
        path = base if len(chunks) == 1 else f"{base}.part{i}"
        with open(path + ".tmp", "wb") as f:
            f.write(chunk)
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths


def epochs_for_budget(budget: float, first_epoch_secs: float, done: int, ceiling: int) -> int:
    """How many epochs fit in `budget` seconds (counted from the start of the epoch that took
    `first_epoch_secs`, which is included in `done`). At least done + 1, never above `ceiling` (when
    the decision falls on the last planned epoch, the run ends there)."""
    fit = done + int(max(0.0, budget - first_epoch_secs) // max(first_epoch_secs, 1e-6))
    return min(ceiling, max(done + 1, fit))


def parse_args(argv):
    args = build_parser().parse_args(argv)
    if args.resume:
        given = vars(build_parser(suppress=True).parse_args(argv))
        ck_path = args.resume if os.path.isfile(args.resume) else os.path.join(args.resume, "last.pt")
        if not os.path.exists(ck_path):
            raise SystemExit(f"--resume: {ck_path} not found")
        stored = torch_load(ck_path)["args"]
        merged = {**stored, **given}
        merged["resume"] = ck_path
        if not merged.get("run"):
            merged["run"] = os.path.dirname(ck_path)
        args = argparse.Namespace(**{**vars(args), **merged})
    if not args.run:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.run = os.path.join("training", "runs", f"{args.dataset or 'data'}-{args.scheme}{args.size}-{stamp}")
    return args


# ------------------------------------------------------------------ main

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    amp = device.type == "cuda" and not args.no_bf16
    channels_last = bool(args.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)
    os.makedirs(args.run, exist_ok=True)

    dcfg = resolve_config(args.dataset, args.data_format, args.data, args.cache, args.resize, args.crop,
                          True if args.stream else None)
    streaming = bool(dcfg.get("stream"))
    t_load = time.time()
    if streaming:
        res, crop = dcfg.get("resize") or 256, dcfg.get("crop") or 224
        train_ds = StreamingImageFolder(dcfg["path"], "train", res, res)
        test_ds = StreamingImageFolder(dcfg["path"], "test", res, crop)
        classes, (H, W, C) = train_ds.classes, (crop, crop, 3)
        mk = lambda ds, shuffle: torch.utils.data.DataLoader(  # noqa: E731
            ds, batch_size=args.batch_size, shuffle=shuffle, num_workers=args.workers, pin_memory=True,
            drop_last=shuffle, persistent_workers=args.workers > 0)
        train_loader, test_loader = mk(train_ds, True), mk(test_ds, False)
        n_train = len(train_ds)
    else:
        train = load_dataset_from_config(dcfg, "train", args.train_limit)
        test = load_dataset_from_config(dcfg, "test")
        classes = train.classes
        H, W, C = train.shape
        data_dev = device if device.type == "cuda" else torch.device("cpu")
        train, test = train.to(data_dev), test.to(data_dev)
        n_train = len(train)
    print(f"data: {dcfg['dataset']} {n_train} train images {H}x{W}x{C}, {len(classes)} classes "
          f"({time.time() - t_load:.1f}s to load)", flush=True)
    aug = args.augment or ("imagenet" if streaming else "crop-flip" if C == 3 else "light")

    scheme = Scheme(args.scheme, args.size, args.stride)
    scheme.validate(H, W)
    view = getattr(args, "input_view", None) or "full"  # runs resumed from before the flag lack it
    position = getattr(args, "position", None) or "sincos"
    if view == "kept" and not args.no_tfjs and args.export:
        print("kept-view models export to ONNX only; TF.js skipped", flush=True)
        args.no_tfjs = True
    cfg_model = {"arch": args.arch, "height": H, "width": W, "channels": C, "encoding": args.encoding,
                 "scheme": scheme.as_manifest(), "classes": classes, "view": view, "position": position}
    model = build_for_config(cfg_model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    decay, no_decay = [], []
    for n_, p in model.named_parameters():
        (no_decay if p.ndim <= 1 and not args.bn_weight_decay else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    cfg = {**cfg_model, "name": args.name or os.path.basename(
               os.path.normpath(args.export)) if args.export else (args.name or "model"),
           "data": {k: v for k, v in dcfg.items() if k != "classes"} | {"classes": classes}}
    start_epoch, elapsed, history = 0, 0.0, []
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    if args.resume:
        ck = torch_load(args.resume, map_location="cpu")  # rng states must stay CPU tensors
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, elapsed, history = ck["epoch"] + 1, ck["elapsed"], ck.get("history", [])
        torch.set_rng_state(ck["rng"]["torch"])
        gen.set_state(ck["rng"]["gen"])
        if device.type == "cuda" and ck["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], device)
        print(f"resumed from {args.resume} at epoch {start_epoch} ({elapsed:.0f}s trained so far)", flush=True)
    stored_args = {k: v for k, v in vars(args).items() if k not in ("resume",)}
    with open(os.path.join(args.run, "args.json"), "w") as f:
        json.dump({"argv": argv, "args": stored_args, "config": cfg}, f, indent=1, default=str)
    log_path = os.path.join(args.run, "log.jsonl")
    hw = hardware_string(device, torch.get_num_threads())
    steps_per_epoch = n_train // args.batch_size if streaming else math.ceil(n_train / args.batch_size)
    epochs_now = 0
    t_invocation = time.time()
    for epoch in range(start_epoch, args.epochs):
        if epoch >= args.epochs:  # lowered by --time-budget
            break
        if args.max_epochs_now is not None and epochs_now >= args.max_epochs_now:
            print(f"stopping after {epochs_now} epoch(s) this invocation; resume with --resume {args.run}")
            break
        model.train()
        t0 = time.time()
        last_print = t0
        seen = 0
        correct = torch.zeros((), dtype=torch.int64, device=device)  # summed on the device: no sync per step
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        if streaming:
            batches = iter(train_loader)
        else:
            perm = torch.randperm(n_train, generator=gen).to(train.images.device)
        for step in range(steps_per_epoch):
            lr = lr_at(args, epoch + step / steps_per_epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            if streaming:
                xb, yb = next(batches)
                x = xb.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
                y = yb.to(device, non_blocking=True)
                x = augment(x, aug, args.pad, (H, W))
            else:
                idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
                x = train.images_float(idx).to(device, non_blocking=True)
                y = train.labels[idx].to(device)
                x = augment(x, aug, args.pad)
            xa = random_ablated_inputs(x, scheme, args.encoding, view, per_batch=args.ablation_per == "batch")
            if channels_last:
                xa = (xa[0].contiguous(memory_format=torch.channels_last),) + xa[1:]
            with autocast(amp):
                out = model(*xa)
                loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bs = y.shape[0]
            seen += bs
            loss_sum += loss.detach().float() * bs
            correct += (out.argmax(1) == y).sum()
            now = time.time()
            if now - last_print >= args.progress_every or step == steps_per_epoch - 1:
                last_print = now
                print(f"epoch {epoch + 1}/{args.epochs} step {step + 1}/{steps_per_epoch} "
                      f"loss {loss_sum.item() / seen:.4f} acc {correct.item() / seen:.4f} lr {lr:.4g} "
                      f"{seen / (now - t0):.0f} img/s", flush=True)
        loss_sum, correct = loss_sum.item(), correct.item()
        train_secs = time.time() - t0
        if streaming:
            ev = evaluate_stream(model, test_loader, scheme, args.encoding, device, amp, channels_last=channels_last, view=view)
        else:
            ev = evaluate(model, test, scheme, args.encoding, device, 512, amp, args.val_limit,
                          channels_last=channels_last, view=view)
        epoch_secs = time.time() - t0
        elapsed += epoch_secs
        rec = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
               "val_loss": ev["loss"], "val_acc_ablated": ev["acc"], "val_n": ev["n"], "lr": lr,
               "train_seconds": round(train_secs, 2), "epoch_seconds": round(epoch_secs, 2),
               "elapsed_seconds": round(elapsed, 1), "time": datetime.datetime.now().isoformat(timespec="seconds")}
        history.append(rec)
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"epoch {epoch + 1}/{args.epochs} done: train loss {rec['train_loss']:.4f} acc {rec['train_acc']:.4f} | "
              f"ablated val loss {ev['loss']:.4f} acc {ev['acc']:.4f} (n={ev['n']}) | {epoch_secs:.0f}s", flush=True)
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "elapsed": elapsed,
              "history": history, "config": cfg, "args": stored_args, "hardware": hw,
              "rng": {"torch": torch.get_rng_state(), "gen": gen.get_state(),
                      "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}}
        epochs_now += 1
        if args.time_budget and epochs_now == min(2, args.epochs - start_epoch):
            # decided after the second epoch of this invocation: the first carries cuDNN autotuning and
            # start-up and overstates an epoch's time several-fold on a GPU. Epochs before the decision
            # should be warm-up (--warmup-epochs 2), whose learning rate does not depend on --epochs,
            # so the whole run equals one started with --epochs planned.
            spent = time.time() - t_invocation
            planned = epochs_for_budget(args.time_budget - spent + epoch_secs, epoch_secs, epoch + 1, args.epochs)
            if planned != args.epochs:
                print(f"time budget {args.time_budget:.0f}s: {spent:.1f}s spent, last epoch took {epoch_secs:.1f}s, "
                      f"training {planned} epochs in all (was {args.epochs})", flush=True)
                args.epochs = planned
                stored_args["epochs"] = planned
        last = epoch + 1 >= args.epochs
        if last or (epoch + 1) % args.checkpoint_every == 0:
            ck["args"] = stored_args
            save_atomic(ck, os.path.join(args.run, "last.pt"))
        if args.snapshot_dir and (last or (epoch + 1) % args.checkpoint_every == 0):
            snap = {"model": fp16_state_dict(model), "config": cfg, "args": stored_args, "history": history,
                    "epoch": epoch, "elapsed": elapsed, "hardware": hw, "weights": "float16",
                    "argv": argv, "torch": torch.__version__}
            write_snapshot(snap, args.snapshot_dir, cfg["name"], args.snapshot_part_mib)
            write_snapshot(snap, args.run, "snapshot", 1e9)

    done = bool(history) and history[-1]["epoch"] >= args.epochs
    if args.export and done:
        from .export import export_model
        parity_n = getattr(args, "parity_count", None) or 32  # runs resumed from before the flag lack it
        if streaming:
            acc, n_eval = history[-1]["val_acc_ablated"], history[-1]["val_n"]
            # parity on real validation images (decoded like the test loader) rather than on noise
            parity_imgs = torch.stack([test_ds[i][0] for i in range(min(len(test_ds), parity_n))]).permute(0, 3, 1, 2).float() / 255
        else:  # whole test set, float32 (no autocast), on the training device
            full = evaluate(model, test, scheme, args.encoding, device, 500, False, channels_last=channels_last, view=view)
            acc, n_eval = full["acc"], full["n"]
            test_cpu = test.to("cpu")
        model = model.float().cpu().eval()
        if channels_last:
            model = model.to(memory_format=torch.contiguous_format)
        cmd = "/usr/bin/python3 -m training.train " + " ".join(shlex.quote(a) for a in argv)
        training = {"dataset": dcfg["dataset"], "trainImages": n_train, "epochs": history[-1]["epoch"],
                    "seconds": round(elapsed, 1), "hardware": hw,
                    "accuracy": {"ablatedTest": round(acc, 4), "testImages": n_eval,
                                 "note": "one uniformly random ablation per test image (fixed seed), argmax"},
                    "optimizer": f"SGD momentum {args.momentum} wd {args.weight_decay} lr {args.lr} {args.sched}",
                    "batchSize": args.batch_size, "augment": aug, "seed": args.seed,
                    "command": cmd, "torch": torch.__version__}
        if not streaming:
            parity_imgs = test_cpu.images_float(slice(0, min(len(test_cpu), 1000)))
        man = export_model(model, cfg, args.export, parity_imgs, training, tfjs=not args.no_tfjs,
                           parity_count=parity_n, parity_source=f"{dcfg['dataset']} test images")
        print(f"exported to {args.export}: ablated test accuracy {acc:.4f} (n={n_eval})", flush=True)
        ck["training_summary"] = training
        save_atomic(ck, os.path.join(args.run, "last.pt"))
        return man
    return None


if __name__ == "__main__":
    main()
