// Encodings of an ablated image into the base classifier's input tensor.
import { type AblationScheme, type ImageGeometry, keptAxes } from './ablation.js';
import { type InputView, keptIndices, viewGeometry } from './kept-view.js';

/**
 * levine6: 2C channels, (x, 1-x) on kept pixels and (0, 0) on ablated ones (Levine & Feizi).
 * mask:    C+1 channels, x on kept pixels and 0 elsewhere, plus a 0/1 mask channel (Salman et al.).
 */
export type Encoding = 'levine6' | 'mask';
export type Layout = 'nchw' | 'nhwc';

export function encodedChannels(encoding: Encoding, channels: number): number {
  if (encoding === 'levine6') return 2 * channels;
  if (encoding === 'mask') return channels + 1;
  throw new Error(`unknown encoding "${String(encoding)}" (expected levine6 or mask)`);
}

export interface EncodeSpec {
  scheme: AblationScheme;
  geom: ImageGeometry;
  /** channels of the source image (1 or 3) */
  channels: number;
  encoding: Encoding;
  layout: Layout;
  /** what the model takes: the full encoded image (default) or only the kept pixels (kept-view.ts) */
  view?: InputView;
  /** per encoded channel, applied as (v - mean) / std after encoding; omitted = identity */
  mean?: readonly number[];
  std?: readonly number[];
}

/** Floats in one encoded ablation. */
export function encodedSize(spec: EncodeSpec): number {
  const g = viewGeometry(spec.view, spec.scheme, spec.geom);
  return g.height * g.width * encodedChannels(spec.encoding, spec.channels);
}

/**
 * Writes ablation `index` of `image` (H x W x C, row-major, values in [0,1]) into `out` at `offset`.
 * Every float of the slot is written, so `out` may be reused between calls.
 */
export function encodeAblation(spec: EncodeSpec, image: Float32Array, index: number, out: Float32Array, offset: number): void {
  const { height: H, width: W } = spec.geom;
  const C = spec.channels;
  const E = encodedChannels(spec.encoding, C);
  if (image.length !== H * W * C) {
    throw new Error(`image has ${image.length} values, expected ${H}x${W}x${C} = ${H * W * C}`);
  }
  if (spec.view === 'kept') {
    encodeKept(spec, image, index, out, offset);
    return;
  }
  const { rowKeep, colKeep } = keptAxes(spec.scheme, spec.geom, index);
  const nchw = spec.layout === 'nchw';
  const mean = spec.mean;
  const std = spec.std;
  const plane = H * W;
  // value of channel e at pixel p, kept or not
  for (let r = 0; r < H; r++) {
    const rowKept = rowKeep[r] === 1;
    for (let c = 0; c < W; c++) {
      const kept = rowKept && colKeep[c] === 1;
      const p = r * W + c;
      const src = p * C;
      for (let e = 0; e < E; e++) {
        let v: number;
        if (!kept) v = 0;
        else if (e < C) v = image[src + e]!;
        else if (spec.encoding === 'levine6') v = Math.fround(1 - image[src + e - C]!);
        else v = 1; // mask channel
        if (mean !== undefined && std !== undefined) v = (v - mean[e]!) / std[e]!;
        out[offset + (nchw ? e * plane + p : p * E + e)] = v;
      }
    }
  }
}

/** The kept view of ablation `index`: every pixel in it is kept, so the encodings' mask is all ones. */
function encodeKept(spec: EncodeSpec, image: Float32Array, index: number, out: Float32Array, offset: number): void {
  const W = spec.geom.width;
  const C = spec.channels;
  const E = encodedChannels(spec.encoding, C);
  const { rows, cols } = keptIndices(spec.scheme, spec.geom, index);
  const kh = rows.length;
  const kw = cols.length;
  const plane = kh * kw;
  const nchw = spec.layout === 'nchw';
  const { mean, std } = spec;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const src = (rows[i]! * W + cols[j]!) * C;
      const p = i * kw + j;
      for (let e = 0; e < E; e++) {
        let v: number;
        if (e < C) v = image[src + e]!;
        else if (spec.encoding === 'levine6') v = Math.fround(1 - image[src + e - C]!);
        else v = 1;
        if (mean !== undefined && std !== undefined) v = (v - mean[e]!) / std[e]!;
        out[offset + (nchw ? e * plane + p : p * E + e)] = v;
      }
    }
  }
}

/** Encodes ablations [start, end) of one image into a fresh batch buffer. */
export function encodeAblationRange(spec: EncodeSpec, image: Float32Array, start: number, end: number): Float32Array {
  const size = encodedSize(spec);
  const out = new Float32Array((end - start) * size);
  for (let k = start; k < end; k++) encodeAblation(spec, image, k, out, (k - start) * size);
  return out;
}

export function validateNormalization(spec: Pick<EncodeSpec, 'encoding' | 'channels' | 'mean' | 'std'>): void {
  const E = encodedChannels(spec.encoding, spec.channels);
  if ((spec.mean === undefined) !== (spec.std === undefined)) throw new Error('normalization needs both mean and std');
  if (spec.mean && spec.std) {
    if (spec.mean.length !== E || spec.std.length !== E) {
      throw new Error(`normalization mean/std must have ${E} values (one per encoded channel of ${spec.encoding}), got ${spec.mean.length}/${spec.std.length}`);
    }
    if (spec.std.some((s) => !(s > 0))) throw new Error('normalization std values must be positive');
  }
}
