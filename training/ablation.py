"""Ablation geometry and encodings, matching core/ablation.ts and core/encoding.ts exactly.

An ablation keeps a band (column/row, width s) or an s x s block whose top-left corner is a
position on a stride-t grid (0, t, 2t, ... < n), wrapping around the image edges; every other
pixel is null. Images here are float tensors in [0,1], NCHW.

Encodings:
  levine6: 2C channels [x_0..x_{C-1}, 1-x_0..1-x_{C-1}] on kept pixels, 0 elsewhere.
  mask:    C+1 channels [x_0..x_{C-1}, m] with x on kept pixels, 0 elsewhere, m = 1 on kept.

Views: "full" feeds the whole H x W encoded ablation (zero outside the kept pixels); "kept" feeds
only the kept pixels (column: H x s, row: s x W, block: s x s, read in wrap order from the
ablation's position) together with that position, for band-native models (core/kept-view.ts).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

KINDS = ("column", "row", "block")
ENCODINGS = ("levine6", "mask")
VIEWS = ("full", "kept")


@dataclass(frozen=True)
class Scheme:
    kind: str
    size: int
    stride: int = 1

    def validate(self, height: int, width: int) -> None:
        if self.kind not in KINDS:
            raise ValueError(f'unknown ablation scheme "{self.kind}" (expected column, row or block)')
        if self.size < 1 or self.stride < 1:
            raise ValueError(f"ablation size and stride must be positive, got {self.size}/{self.stride}")
        limit = height if self.kind == "row" else width if self.kind == "column" else min(height, width)
        if self.size > limit:
            raise ValueError(f"ablation size {self.size} exceeds the image ({height}x{width}) for {self.kind} scheme")

    def as_manifest(self) -> dict:
        return {"kind": self.kind, "size": self.size, "stride": self.stride}


def axis_positions(n: int, stride: int) -> list[int]:
    return list(range(0, n, stride))


def row_axis(s: Scheme, h: int) -> list[int]:
    return [0] if s.kind == "column" else axis_positions(h, s.stride)


def col_axis(s: Scheme, w: int) -> list[int]:
    return [0] if s.kind == "row" else axis_positions(w, s.stride)


def ablation_count(s: Scheme, h: int, w: int) -> int:
    return len(row_axis(s, h)) * len(col_axis(s, w))


def ablation_position(s: Scheme, h: int, w: int, index: int) -> tuple[int, int]:
    """Index -> (row, col) top-left of the kept band/block; block is row-major (row outer)."""
    rows, cols = row_axis(s, h), col_axis(s, w)
    if not 0 <= index < len(rows) * len(cols):
        raise IndexError(f"ablation index {index} out of range 0..{len(rows) * len(cols) - 1}")
    return rows[index // len(cols)], cols[index % len(cols)]


def keep_axes(s: Scheme, h: int, w: int, rows: torch.Tensor, cols: torch.Tensor):
    """Per-image keep flags along each axis for start positions rows[b], cols[b] (int64, shape B).
    Returns (row_keep B x H, col_keep B x W) booleans."""
    dev = rows.device
    r = torch.arange(h, device=dev)
    c = torch.arange(w, device=dev)
    row_len = h if s.kind == "column" else s.size
    col_len = w if s.kind == "row" else s.size
    row_keep = torch.remainder(r[None, :] - rows[:, None], h) < row_len
    col_keep = torch.remainder(c[None, :] - cols[:, None], w) < col_len
    return row_keep, col_keep


def keep_mask(s: Scheme, h: int, w: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """B x 1 x H x W float mask (1 = kept)."""
    row_keep, col_keep = keep_axes(s, h, w, rows, cols)
    return (row_keep[:, :, None] & col_keep[:, None, :]).unsqueeze(1).float()


def random_positions(s: Scheme, b: int, h: int, w: int, device, generator=None):
    """A fresh uniformly random grid position per image."""
    nr, nc = len(row_axis(s, h)), len(col_axis(s, w))
    ri = torch.randint(nr, (b,), device=device, generator=generator)
    ci = torch.randint(nc, (b,), device=device, generator=generator)
    return ri * s.stride if s.kind != "column" else ri * 0, ci * s.stride if s.kind != "row" else ci * 0


def index_positions(s: Scheme, h: int, w: int, indices: torch.Tensor):
    """Ablation indices (as in the TS core) -> start positions."""
    nc = len(col_axis(s, w))
    ri, ci = indices // nc, indices % nc
    rows = ri * s.stride if s.kind != "column" else ri * 0
    cols = ci * s.stride if s.kind != "row" else ci * 0
    return rows, cols


def encode(x: torch.Tensor, mask: torch.Tensor, encoding: str) -> torch.Tensor:
    """x: B x C x H x W in [0,1]; mask: B x 1 x H x W (0/1). Returns the encoded NCHW batch."""
    if encoding == "levine6":
        return torch.cat([x * mask, (1 - x) * mask], dim=1)
    if encoding == "mask":
        return torch.cat([x * mask, mask], dim=1)
    raise ValueError(f'unknown encoding "{encoding}" (expected levine6 or mask)')


def encoded_channels(encoding: str, channels: int) -> int:
    if encoding == "levine6":
        return 2 * channels
    if encoding == "mask":
        return channels + 1
    raise ValueError(f'unknown encoding "{encoding}" (expected levine6 or mask)')


def random_ablate(x: torch.Tensor, s: Scheme, encoding: str, generator=None, per_batch: bool = False) -> torch.Tensor:
    """Training/validation: one uniformly random ablation per image (per_batch: one position shared
    by the whole batch, as the authors' training code does with reuse_noise=True), encoded."""
    b, _, h, w = x.shape
    rows, cols = random_positions(s, 1 if per_batch else b, h, w, x.device, generator)
    if per_batch:
        rows, cols = rows.expand(b), cols.expand(b)
    return encode(x, keep_mask(s, h, w, rows, cols), encoding)


def ablate_index(x: torch.Tensor, s: Scheme, encoding: str, indices) -> torch.Tensor:
    """Deterministic: ablation number indices[b] (TS ablation index) of image b, encoded."""
    b, _, h, w = x.shape
    idx = torch.as_tensor(indices, device=x.device, dtype=torch.int64).expand(b) if not torch.is_tensor(indices) or indices.dim() == 0 else indices.to(x.device)
    rows, cols = index_positions(s, h, w, idx)
    return encode(x, keep_mask(s, h, w, rows, cols), encoding)


# ------------------------------------------------------------------ kept view (band-native models)

def kept_shape(s: Scheme, h: int, w: int) -> tuple[int, int]:
    """(rows, cols) of the kept region: column H x s, row s x W, block s x s."""
    return (h if s.kind == "column" else s.size, w if s.kind == "row" else s.size)


def kept_view(x: torch.Tensor, s: Scheme, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """x: B x C x H x W; the kept pixels of the ablation at (rows[b], cols[b]) in wrap order:
    kept row i is image row (rows[b] + i) mod H, kept column j is (cols[b] + j) mod W."""
    b, c, h, w = x.shape
    kh, kw = kept_shape(s, h, w)
    dev = x.device
    r = torch.remainder(rows.to(dev)[:, None] + torch.arange(kh, device=dev), h)
    cc = torch.remainder(cols.to(dev)[:, None] + torch.arange(kw, device=dev), w)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return x[bi, ci, r[:, None, :, None], cc[:, None, None, :]]


def encode_kept(xk: torch.Tensor, encoding: str) -> torch.Tensor:
    """Every pixel of a kept view is kept: the encodings with a mask of ones."""
    if encoding == "levine6":
        return torch.cat([xk, 1 - xk], dim=1)
    if encoding == "mask":
        return torch.cat([xk, torch.ones_like(xk[:, :1])], dim=1)
    raise ValueError(f'unknown encoding "{encoding}" (expected levine6 or mask)')


def positions_tensor(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """B x 2 float32 (row, col): the `position` input of a kept-view model."""
    return torch.stack([rows, cols], dim=1).float()


def ablated_inputs(x: torch.Tensor, s: Scheme, encoding: str, view: str, rows: torch.Tensor, cols: torch.Tensor):
    """The model inputs of the ablations at (rows, cols): (encoded full image,) or (kept view, positions)."""
    if view == "full":
        return (encode(x, keep_mask(s, x.shape[2], x.shape[3], rows, cols), encoding),)
    if view == "kept":
        return (encode_kept(kept_view(x, s, rows, cols), encoding), positions_tensor(rows, cols).to(x.device))
    raise ValueError(f'unknown input view "{view}" (expected full or kept)')


def random_ablated_inputs(x: torch.Tensor, s: Scheme, encoding: str, view: str, generator=None, per_batch: bool = False):
    b, _, h, w = x.shape
    rows, cols = random_positions(s, 1 if per_batch else b, h, w, x.device, generator)
    if per_batch:
        rows, cols = rows.expand(b), cols.expand(b)
    return ablated_inputs(x, s, encoding, view, rows, cols)


def index_ablated_inputs(x: torch.Tensor, s: Scheme, encoding: str, view: str, indices: torch.Tensor):
    """Deterministic: the inputs for ablation number indices[b] (TS ablation index) of image b."""
    rows, cols = index_positions(s, x.shape[2], x.shape[3], indices.to(x.device))
    return ablated_inputs(x, s, encoding, view, rows, cols)
