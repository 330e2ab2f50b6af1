"""Reading the .pt files training writes (checkpoints, data set caches): below data and export, so
that neither needs the other for it."""
from __future__ import annotations

import torch


def torch_load(path: str, map_location="cpu"):
    """torch.load of our own checkpoints (PyTorch >= 2.6 defaults to weights_only=True)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except TypeError:  # PyTorch < 1.13 has no weights_only
        return torch.load(path, map_location=map_location)
