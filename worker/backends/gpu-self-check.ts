// The load-time self-check of a GPU backend: a fixed probe batch (two seeded images, four
// ablations each, the last one wrapping around the edge) runs on the GPU and on the CPU
// provider; the GPU is refused, naming the model and the largest logit difference, when they
// disagree beyond a tolerance. A miscompiling driver or provider then never produces certificates.
import { type EncodeSpec, ablationCount, encodeAblation, encodedSize, keptPositions } from '../../core/index.js';
import type { LoadedModel } from '../types.js';
import { stageAblationsOf } from './onnx-graph-ablate.js';

export const DEFAULT_SELF_CHECK_TOLERANCE = 1e-3;

export class GpuSelfCheckError extends Error {
  constructor(message: string, readonly maxDiff: number) {
    super(message);
    this.name = 'GpuSelfCheckError';
  }
}

export interface ProbeBatch {
  images: Float32Array;
  n: number;
  /** ablation indices probed, the same for each image */
  indices: number[];
  /** the device stage's ablations input (stageAblationsOf) */
  ablations: Float32Array;
  /** host-built encoded rows, n x indices.length, image-major */
  encoded: Float32Array;
  /** kept-view models: each row's position input */
  keptPositions?: Float32Array;
  rows: number;
}

/** The fixed probe of a model: same every time, quantized like decoded 8-bit images. */
export function probeBatch(model: LoadedModel, layout: EncodeSpec['layout'], n = 2): ProbeBatch {
  const m = model.manifest;
  const geom = { height: m.input.height, width: m.input.width };
  const spec: EncodeSpec = {
    scheme: m.ablation,
    geom,
    channels: m.input.channels,
    encoding: m.encoding,
    layout,
    ...(m.inputView === 'kept' ? { view: 'kept' as const } : {}),
    ...(m.normalization ? { mean: m.normalization.mean, std: m.normalization.std } : {}),
  };
  const K = ablationCount(m.ablation, geom);
  const indices = [...new Set([0, Math.floor(K / 3), Math.floor((2 * K) / 3), K - 1])];
  const per = geom.height * geom.width * m.input.channels;
  const images = new Float32Array(n * per);
  let s = 20260512;
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    images[i] = Math.fround(((s >>> 16) % 256) / 255);
  }
  const size = encodedSize(spec);
  const rows = n * indices.length;
  const encoded = new Float32Array(rows * size);
  let kept: Float32Array | undefined;
  if (spec.view === 'kept') kept = new Float32Array(rows * 2);
  for (let i = 0; i < n; i++) {
    const img = images.subarray(i * per, (i + 1) * per);
    indices.forEach((k, a) => {
      const r = i * indices.length + a;
      encodeAblation(spec, img, k, encoded, r * size);
      if (kept) kept.set(keptPositions(m.ablation, geom, k, k + 1), r * 2);
    });
  }
  return { images, n, indices, ablations: stageAblationsOf(m.ablation, geom, indices), encoded, rows, ...(kept ? { keptPositions: kept } : {}) };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; at: number } {
  if (a.length !== b.length) return { diff: Infinity, at: -1 };
  let diff = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= diff)) {
      diff = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  return { diff, at };
}

/** Throws GpuSelfCheckError when `gpu` and `cpu` logits of the probe differ beyond `tolerance`. */
export function checkProbe(what: { provider: string; model: string; path: string }, gpu: Float32Array, cpu: Float32Array, classes: number, tolerance: number): number {
  const { diff, at } = maxAbsDiff(gpu, cpu);
  if (!(diff <= tolerance)) {
    const row = at < 0 ? '' : ` (probe row ${Math.floor(at / classes)}, class ${at % classes}: ${gpu[at]} on ${what.provider}, ${cpu[at]} on the CPU provider)`;
    throw new GpuSelfCheckError(
      `${what.provider} self-check refused the GPU for model ${what.model} (${what.path}): largest logit difference against the CPU provider ` +
        `on the probe batch is ${diff === Infinity ? 'not finite' : diff.toPrecision(4)}, tolerance ${tolerance}${row}`,
      diff,
    );
  }
  return diff;
}
