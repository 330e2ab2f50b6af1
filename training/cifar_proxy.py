"""16x16 proxies of the CIFAR-10 JPEG copy, for measuring what one JPEG pass costs a smoothed classifier.

The only CIFAR-10 here is a JPEG q75 4:2:0 copy, with no lossless original to compare against.
Box-averaging each 32x32 image to 16x16 (2x2 means) removes most of its 8x8-block artefacts and
gives a nearly artefact-free "clean" proxy (stored as PNG, lossless). From it we make two JPEG
versions with Pillow (libjpeg): q75 with 4:2:0 chroma subsampling (what the copy has) and q75 with
4:4:4 (no subsampling), which separates colour subsampling from luma/chroma quantisation.

    /usr/bin/python3 -m training.cifar_proxy data/cifar10 data/cifar16

writes data/cifar16/{png,q75-420,q75-444}/{train,test}/<class>/NNNN.{png,jpg}: ImageFolder trees
that both `training.train --data-format imagefolder` and `patchcert certify --format imagefolder`
read (so training and certification see the very same decoded pixels).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

from .data import list_imagefolder

VARIANTS = {  # name -> (file extension, Pillow save options)
    "png": (".png", {"format": "PNG", "optimize": False}),
    "q75-420": (".jpg", {"format": "JPEG", "quality": 75, "subsampling": 2}),
    "q75-444": (".jpg", {"format": "JPEG", "quality": 75, "subsampling": 0}),
}


def box_average(img: np.ndarray, factor: int = 2) -> np.ndarray:
    """H x W x C uint8 -> (H/f) x (W/f) x C uint8, each output pixel the rounded mean of an f x f block."""
    h, w, c = img.shape
    if h % factor or w % factor:
        raise ValueError(f"image of {h}x{w} is not divisible by {factor}")
    m = img.reshape(h // factor, factor, w // factor, factor, c).astype(np.float64).mean(axis=(1, 3))
    return np.floor(m + 0.5).astype(np.uint8)


def make_proxies(src: str, dst: str, factor: int = 2, variants=tuple(VARIANTS)) -> dict:
    """Writes every variant for both splits; returns per-variant mean |pixel change| vs the PNG proxy."""
    stats = {}
    for split in ("train", "test"):
        base, _, items = list_imagefolder(src, split)
        diffs = {v: [] for v in variants}
        for path, label in items:
            with Image.open(path) as im:
                small = box_average(np.asarray(im.convert("RGB")), factor)
            rel = os.path.relpath(path, base)
            stem = os.path.splitext(rel)[0]
            for v in variants:
                ext, opts = VARIANTS[v]
                out = os.path.join(dst, v, split, stem + ext)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                Image.fromarray(small, mode="RGB").save(out, **opts)
                with Image.open(out) as back:
                    got = np.asarray(back.convert("RGB"), dtype=np.int16)
                diffs[v].append(np.abs(got - small.astype(np.int16)).mean())
        for v in variants:
            stats[f"{v}/{split}"] = {"images": len(items), "meanAbsDiff": float(np.mean(diffs[v]))}
            print(f"{v}/{split}: {len(items)} images, mean |diff| vs the PNG proxy "
                  f"{np.mean(diffs[v]):.3f}/255", flush=True)
    return stats


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="ImageFolder root with train/ and test/ (the CIFAR-10 JPEG copy)")
    ap.add_argument("dst", help="output folder")
    ap.add_argument("--factor", type=int, default=2, help="box-average factor (32x32 -> 16x16 at 2)")
    args = ap.parse_args(argv)
    make_proxies(args.src, args.dst, args.factor)


if __name__ == "__main__":
    main()
