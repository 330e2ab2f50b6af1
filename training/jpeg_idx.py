"""Re-encode an IDX image data set (MNIST, Fashion-MNIST) through baseline JPEG at a given quality.

A controlled experiment for the CIFAR-10 gap: the only CIFAR-10 at hand is a JPEG q75 copy, with no
lossless original to compare against. Fashion-MNIST has its lossless original, so training and
certifying the same recipe on it and on its JPEG copy measures what JPEG alone costs a smoothed
classifier.

    /usr/bin/python3 -m training.jpeg_idx /usr/share/datasets/fashion-mnist data/fashion-mnist-q75 --quality 75
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import shutil
import struct

import numpy as np
from PIL import Image

SPLITS = ("train", "t10k")


def find(folder: str, stem: str) -> str:
    """stem or stem.gz in folder (MNIST-format files come both ways)."""
    for name in (stem + ".gz", stem):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"{folder}: neither {stem}.gz nor {stem} found")


def _open(path: str, mode: str):
    return gzip.open(path, mode) if path.endswith(".gz") else open(path, mode)


def read_images(path: str) -> np.ndarray:
    with _open(path, "rb") as f:
        raw = f.read()
    magic, n, h, w = struct.unpack(">IIII", raw[:16])
    if magic != 2051:
        raise ValueError(f"{path}: not an IDX image file (magic {magic}, expected 2051)")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"), dtype=np.uint8)


def write_images(path: str, images: np.ndarray) -> None:
    n, h, w = images.shape
    with _open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, h, w))
        f.write(images.tobytes())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder with the four IDX .gz files")
    ap.add_argument("dst", help="output folder")
    ap.add_argument("--quality", type=int, default=75)
    args = ap.parse_args(argv)
    os.makedirs(args.dst, exist_ok=True)
    for split in SPLITS:
        images_path = find(args.src, f"{split}-images-idx3-ubyte")
        labels_path = find(args.src, f"{split}-labels-idx1-ubyte")
        src = read_images(images_path)
        out = np.stack([jpeg_roundtrip(im, args.quality) for im in src])
        write_images(os.path.join(args.dst, os.path.basename(images_path)), out)
        shutil.copyfile(labels_path, os.path.join(args.dst, os.path.basename(labels_path)))
        diff = np.abs(out.astype(np.int16) - src.astype(np.int16))
        print(f"{os.path.basename(images_path)}: {len(src)} images, JPEG q{args.quality}: mean |diff| "
              f"{diff.mean():.2f}/255, max {diff.max()}, pixels changed {100 * (diff > 0).mean():.1f}%")

if __name__ == "__main__":
    main()
