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

from .data import find_idx_file, read_idx

SPLITS = ("train", "t10k")


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"), dtype=np.uint8)


def write_images(path: str, images: np.ndarray) -> None:
    n, h, w = images.shape
    with (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb")) as f:
        f.write(struct.pack(">IIII", 2051, n, h, w))
        f.write(images.tobytes())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="folder with the four IDX files (.gz or not)")
    ap.add_argument("dst", help="output folder")
    ap.add_argument("--quality", type=int, default=75)
    args = ap.parse_args(argv)
    os.makedirs(args.dst, exist_ok=True)
    for split in SPLITS:
        images_path = find_idx_file(args.src, f"{split}-images-idx3-ubyte")
        labels_path = find_idx_file(args.src, f"{split}-labels-idx1-ubyte")
        src = read_idx(images_path)
        if src.ndim != 3:
            raise ValueError(f"{images_path}: expected N x H x W images, found dimensions {src.shape}")
        out = np.stack([jpeg_roundtrip(im, args.quality) for im in src])
        write_images(os.path.join(args.dst, os.path.basename(images_path)), out)
        shutil.copyfile(labels_path, os.path.join(args.dst, os.path.basename(labels_path)))
        diff = np.abs(out.astype(np.int16) - src.astype(np.int16))
        print(f"{os.path.basename(images_path)}: {len(src)} images, JPEG q{args.quality}: mean |diff| "
              f"{diff.mean():.2f}/255, max {diff.max()}, pixels changed {100 * (diff > 0).mean():.1f}%")


if __name__ == "__main__":
    main()
