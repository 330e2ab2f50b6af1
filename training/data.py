"""Data sets as uint8 tensors (N x H x W x C) plus int64 labels, loaded fully into memory (small sets,
on the GPU when there is one), or streamed from an ImageFolder tree (ImageNet scale).

Formats:
  idx          MNIST-format IDX files (.gz or not): a folder holding {train,t10k}-images-idx3-ubyte[.gz]
               and {train,t10k}-labels-idx1-ubyte[.gz], or the images file itself.
  cifar10-bin  CIFAR-10 official binary: cifar-10-batches-bin/ (data_batch_1..5.bin, test_batch.bin),
               3073-byte records (label, 1024 R, 1024 G, 1024 B).
  imagefolder  ROOT/<split>/<class>/*.{jpg,jpeg,png} (or ROOT/<class>/... without split folders);
               class index = sorted folder name; optional ImageNet-style resize (shorter side) + centre
               crop. Decoded with PIL (Debian python3-pil).
A cache file (`--cache PREFIX`) stores the decoded uint8 tensors as PREFIX-<split>.pt so JPEG trees
are decoded once."""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field

import numpy as np
import torch

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# named data sets: format, default path (relative to the repository root unless absolute), classes
PRESETS = {
    "fashion-mnist": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist", "classes": FASHION_CLASSES},
    "mnist": {"format": "idx", "path": "data/mnist", "classes": MNIST_CLASSES},
    "cifar10": {"format": "imagefolder", "path": "data/cifar10", "cache": "data/cifar10-u8", "classes": None},
    "cifar10-bin": {"format": "cifar10-bin", "path": "data/cifar-10-batches-bin", "classes": CIFAR10_CLASSES},
    "imagenet": {"format": "imagefolder", "path": "data/imagenet", "resize": 256, "crop": 224, "stream": True,
                 "classes": None},
}


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 N x H x W x C
    labels: torch.Tensor  # int64 N
    classes: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def shape(self):
        _, h, w, c = self.images.shape
        return h, w, c

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.source, self.meta)

    def images_float(self, idx) -> torch.Tensor:
        """float32 NCHW in [0,1] for the selected images (same device as the data)."""
        return self.images[idx].permute(0, 3, 1, 2).float().div_(255.0)


# ------------------------------------------------------------------ IDX

def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def find_idx_file(folder: str, stem: str) -> str:
    """stem or stem.gz in folder (MNIST-format files come both ways)."""
    for name in (stem, stem + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{os.path.join(folder, stem)}[.gz] not found")


def read_idx(path: str) -> np.ndarray:
    with _open(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX element type 0x{data[2]:02x} is not unsigned byte")
    nd = data[3]
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {int(np.prod(dims))} values for dims {dims}, found {body.size}")
    return body.reshape(dims)


def load_idx(path: str, split: str = "train", classes=None) -> ImageSet:
    if os.path.isdir(path):
        prefix = "train" if split == "train" else "t10k"
        ipath = find_idx_file(path, f"{prefix}-images-idx3-ubyte")
        lpath = find_idx_file(path, f"{prefix}-labels-idx1-ubyte")
    else:
        ipath = path
        lpath = path.replace("images-idx3", "labels-idx1")
    x = read_idx(ipath)
    y = read_idx(lpath)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{ipath}: images {x.shape} and labels {y.shape} do not match")
    n_classes = int(y.max()) + 1
    return ImageSet(torch.from_numpy(x.copy()).unsqueeze(-1), torch.from_numpy(y.astype(np.int64)),
                    list(classes) if classes else [str(i) for i in range(n_classes)], ipath)


# ------------------------------------------------------------------ CIFAR-10 binary

def load_cifar_bin(path: str, split: str = "train", classes=None) -> ImageSet:
    folder = path
    if os.path.isdir(os.path.join(path, "cifar-10-batches-bin")):
        folder = os.path.join(path, "cifar-10-batches-bin")
    if os.path.isfile(path):
        files = [path]
    elif split == "train":
        files = [os.path.join(folder, f"data_batch_{i}.bin") for i in range(1, 6)]
    else:
        files = [os.path.join(folder, "test_batch.bin")]
    xs, ys = [], []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size % 3073:
            raise ValueError(f"{f}: size {raw.size} is not a multiple of 3073-byte CIFAR-10 records")
        rec = raw.reshape(-1, 3073)
        ys.append(rec[:, 0].astype(np.int64))
        xs.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    meta = os.path.join(folder, "batches.meta.txt")
    if classes is None and os.path.exists(meta):
        classes = [l.strip() for l in open(meta) if l.strip()]
    return ImageSet(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)),
                    list(classes or CIFAR10_CLASSES), folder)


# ------------------------------------------------------------------ ImageFolder

IMG_EXT = (".jpg", ".jpeg", ".png")


def _split_root(root: str, split: str) -> str:
    names = ("train",) if split == "train" else ("test", "val", "validation")
    for n in names:
        if os.path.isdir(os.path.join(root, n)):
            return os.path.join(root, n)
    return root


def list_imagefolder(root: str, split: str):
    base = _split_root(root, split)
    classes = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    if not classes:
        raise FileNotFoundError(f"{base}: no class folders")
    items = []
    for ci, c in enumerate(classes):
        for dirpath, _, files in sorted(os.walk(os.path.join(base, c))):
            for f in sorted(files):
                if f.lower().endswith(IMG_EXT):
                    items.append((os.path.join(dirpath, f), ci))
    return base, classes, items


def decode_image(path: str, resize: int | None, crop: int | None, gray: bool = False) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise RuntimeError("ImageFolder data needs PIL: apt-get install -y python3-pil") from e
    with Image.open(path) as im:
        im = im.convert("L" if gray else "RGB")
        if resize:
            w, h = im.size
            s = resize / min(w, h)
            im = im.resize((max(resize, round(w * s)), max(resize, round(h * s))), Image.BILINEAR)
        if crop:
            w, h = im.size
            left, top = (w - crop) // 2, (h - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
        a = np.asarray(im, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def load_imagefolder(root: str, split: str = "train", resize=None, crop=None, limit=None, gray=False) -> ImageSet:
    base, classes, items = list_imagefolder(root, split)
    if limit:
        items = items[:limit]
    first = decode_image(items[0][0], resize, crop, gray)
    out = np.empty((len(items),) + first.shape, dtype=np.uint8)
    for i, (p, _) in enumerate(items):
        a = decode_image(p, resize, crop, gray)
        if a.shape != first.shape:
            raise ValueError(f"{p}: image is {a.shape}, expected {first.shape} (use --resize/--crop)")
        out[i] = a
    labels = torch.tensor([c for _, c in items], dtype=torch.int64)
    return ImageSet(torch.from_numpy(out), labels, classes, base)


class StreamingImageFolder(torch.utils.data.Dataset):
    """ImageNet-scale: decode on the fly (DataLoader workers). Train: resize + random crop + flip happen
    in the training loop's tensor augmentation after a centre crop to `crop + pad`; here we decode to
    resize + centre crop."""

    def __init__(self, root, split, resize, crop):
        self.base, self.classes, self.items = list_imagefolder(root, split)
        self.resize, self.crop = resize, crop

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        p, c = self.items[i]
        # copy: PIL's array is read-only, which torch.from_numpy warns about in every loader worker
        return torch.from_numpy(decode_image(p, self.resize, self.crop).copy()), c


# ------------------------------------------------------------------ config-driven loading

def resolve_config(dataset: str | None, fmt=None, path=None, cache=None, resize=None, crop=None, stream=None) -> dict:
    cfg = dict(PRESETS.get(dataset or "", {}))
    if dataset and dataset not in PRESETS and fmt is None:
        raise ValueError(f"unknown data set {dataset!r}: give --data-format and --data, or one of {', '.join(PRESETS)}")
    for k, v in (("format", fmt), ("path", path), ("cache", cache), ("resize", resize), ("crop", crop),
                 ("stream", stream)):
        if v is not None:
            cfg[k] = v
    cfg["dataset"] = dataset or os.path.basename(os.path.normpath(cfg["path"]))
    return cfg


def load_dataset_from_config(cfg: dict, split: str, limit: int | None = None) -> ImageSet:
    fmt, path = cfg["format"], cfg["path"]
    cache = cfg.get("cache")
    if cache and os.path.exists(f"{cache}-{split}.pt"):
        from .torch_io import torch_load
        d = torch_load(f"{cache}-{split}.pt")
        s = ImageSet(d["images"], d["labels"], d["classes"], d.get("source", f"{cache}-{split}.pt"))
    elif fmt == "idx":
        s = load_idx(path, split, cfg.get("classes"))
    elif fmt == "cifar10-bin":
        s = load_cifar_bin(path, split, cfg.get("classes"))
    elif fmt == "imagefolder":
        s = load_imagefolder(path, split, cfg.get("resize"), cfg.get("crop"), gray=bool(cfg.get("gray")))
        if cache:
            os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
            tmp = f"{cache}-{split}.pt.tmp"
            torch.save({"images": s.images, "labels": s.labels, "classes": s.classes, "source": s.source}, tmp)
            os.replace(tmp, f"{cache}-{split}.pt")
    else:
        raise ValueError(f"unknown data format {fmt!r} (expected idx, cifar10-bin or imagefolder)")
    if cfg.get("classes") and len(cfg["classes"]) == len(s.classes):
        s.classes = list(cfg["classes"])
    if limit:
        s = ImageSet(s.images[:limit], s.labels[:limit], s.classes, s.source)
    return s
