// The derandomized-smoothing prediction and certificate: integer arithmetic on vote counts.
import { type AblationScheme, type ImageGeometry, patchDelta } from './ablation.js';

export interface SmoothedPrediction {
  /** class with the most votes, lowest index on ties; 0 when nothing voted (paper's convention) */
  prediction: number;
  /** true when every count is zero: the smoothed classifier abstains and certifies nothing */
  abstained: boolean;
}

export function smoothedPrediction(counts: ArrayLike<number>): SmoothedPrediction {
  let best = 0;
  let total = 0;
  for (let c = 0; c < counts.length; c++) {
    total += counts[c]!;
    if (counts[c]! > counts[best]!) best = c;
  }
  return { prediction: best, abstained: total === 0 };
}

/**
 * Is `prediction` certified against every patch whose Δ is `delta`?
 * n_c - n_c' > 2Δ for every c' ≠ c, or n_c - n_c' = 2Δ with c < c'.
 */
export function isCertified(counts: ArrayLike<number>, prediction: number, delta: number): boolean {
  const nc = counts[prediction]!;
  for (let o = 0; o < counts.length; o++) {
    if (o === prediction) continue;
    const gap = nc - counts[o]!;
    if (gap > 2 * delta) continue;
    if (gap === 2 * delta && prediction < o) continue;
    return false;
  }
  return true;
}

/**
 * Largest square patch side m (1..deltas.length) the prediction is certified for, 0 if none.
 * deltas[m-1] is Δ for an m x m patch; Δ never decreases with m, so the first failure ends it.
 */
export function largestCertifiedSide(counts: ArrayLike<number>, deltas: readonly number[]): number {
  const { prediction, abstained } = smoothedPrediction(counts);
  if (abstained) return 0;
  let side = 0;
  for (let m = 1; m <= deltas.length; m++) {
    if (!isCertified(counts, prediction, deltas[m - 1]!)) break;
    side = m;
  }
  return side;
}

/** Certificate for a rectangular patch of ph x pw pixels. */
export function certifiedAgainstPatch(
  counts: ArrayLike<number>,
  scheme: AblationScheme,
  geom: ImageGeometry,
  patchHeight: number,
  patchWidth: number,
): boolean {
  const { prediction, abstained } = smoothedPrediction(counts);
  return !abstained && isCertified(counts, prediction, patchDelta(scheme, geom, patchHeight, patchWidth));
}

export interface ImageCertificate {
  prediction: number;
  abstained: boolean;
  /** largest certified square patch side, 0 if none */
  certified: number;
}

export function certifyCounts(counts: ArrayLike<number>, deltas: readonly number[]): ImageCertificate {
  const p = smoothedPrediction(counts);
  return { ...p, certified: largestCertifiedSide(counts, deltas) };
}

export function maxPatchSide(geom: ImageGeometry): number {
  return Math.min(geom.height, geom.width);
}
