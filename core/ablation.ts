// Ablation geometry of (De)Randomized Smoothing: which pixels each ablation keeps,
// and Δ, the most ablations one adversarial patch can intersect.
import { checkNumericOption } from './numeric-options.js';

export type SchemeKind = 'column' | 'row' | 'block';

export interface AblationScheme {
  kind: SchemeKind;
  /** band width (column/row) or block side (block), in pixels */
  size: number;
  /** distance between consecutive ablation positions; 1 = every position */
  stride: number;
}

export interface ImageGeometry {
  height: number;
  width: number;
}

/** An ablation position: the top-left pixel of the kept band/block (wrapping). */
export interface AblationPosition {
  row: number;
  col: number;
}

export function validateScheme(scheme: AblationScheme, geom: ImageGeometry): void {
  const { kind, size, stride } = scheme;
  if (kind !== 'column' && kind !== 'row' && kind !== 'block') {
    throw new Error(`unknown ablation scheme "${String(kind)}" (expected column, row or block)`);
  }
  checkNumericOption('size', size, 'ablation size');
  checkNumericOption('stride', stride, 'ablation stride');
  if (!Number.isInteger(geom.height) || !Number.isInteger(geom.width) || geom.height < 1 || geom.width < 1) {
    throw new Error(`image geometry must be positive integers, got ${geom.height}x${geom.width}`);
  }
  const limit = kind === 'row' ? geom.height : kind === 'column' ? geom.width : Math.min(geom.height, geom.width);
  if (size > limit) throw new Error(`ablation size ${size} exceeds the image (${geom.height}x${geom.width}) for ${kind} scheme`);
}

/** Grid positions 0, t, 2t, … < n along one axis. */
export function axisPositions(n: number, stride: number): number[] {
  // a stride below 1 would never reach n: refuse it here too, whatever called without validating
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`ablation stride must be a positive integer, got ${stride}`);
  const out: number[] = [];
  for (let p = 0; p < n; p += stride) out.push(p);
  return out;
}

function rowAxis(scheme: AblationScheme, geom: ImageGeometry): number[] {
  return scheme.kind === 'column' ? [0] : axisPositions(geom.height, scheme.stride);
}

function colAxis(scheme: AblationScheme, geom: ImageGeometry): number[] {
  return scheme.kind === 'row' ? [0] : axisPositions(geom.width, scheme.stride);
}

/** Number of ablations K of a scheme on an image. */
export function ablationCount(scheme: AblationScheme, geom: ImageGeometry): number {
  return rowAxis(scheme, geom).length * colAxis(scheme, geom).length;
}

/** Ablation index → position. Block ablations are ordered row-major (row position outer). */
export function ablationPosition(scheme: AblationScheme, geom: ImageGeometry, index: number): AblationPosition {
  const cols = colAxis(scheme, geom);
  const rows = rowAxis(scheme, geom);
  if (!Number.isInteger(index) || index < 0 || index >= rows.length * cols.length) {
    throw new RangeError(`ablation index ${index} out of range 0..${rows.length * cols.length - 1}`);
  }
  return { row: rows[Math.floor(index / cols.length)]!, col: cols[index % cols.length]! };
}

/**
 * Kept ranges of one ablation along each axis: start and length, wrapping modulo the axis size.
 * A column band keeps every row; a row band keeps every column.
 */
export function keptRanges(scheme: AblationScheme, geom: ImageGeometry, index: number) {
  const pos = ablationPosition(scheme, geom, index);
  const rowLen = scheme.kind === 'column' ? geom.height : scheme.size;
  const colLen = scheme.kind === 'row' ? geom.width : scheme.size;
  return { rowStart: pos.row, rowLen, colStart: pos.col, colLen };
}

/** Per-axis 0/1 keep flags for one ablation; pixel (r, c) is kept iff rowKeep[r] && colKeep[c]. */
export function keptAxes(scheme: AblationScheme, geom: ImageGeometry, index: number): { rowKeep: Uint8Array; colKeep: Uint8Array } {
  const r = keptRanges(scheme, geom, index);
  const rowKeep = new Uint8Array(geom.height);
  const colKeep = new Uint8Array(geom.width);
  for (let i = 0; i < r.rowLen; i++) rowKeep[(r.rowStart + i) % geom.height] = 1;
  for (let i = 0; i < r.colLen; i++) colKeep[(r.colStart + i) % geom.width] = 1;
  return { rowKeep, colKeep };
}

/** Full H*W keep mask (row-major) of one ablation; used by tests and tools, not the hot path. */
export function keptMask(scheme: AblationScheme, geom: ImageGeometry, index: number): Uint8Array {
  const { rowKeep, colKeep } = keptAxes(scheme, geom, index);
  const mask = new Uint8Array(geom.height * geom.width);
  for (let r = 0; r < geom.height; r++) {
    if (!rowKeep[r]) continue;
    for (let c = 0; c < geom.width; c++) mask[r * geom.width + c] = colKeep[c]!;
  }
  return mask;
}

/**
 * Along one axis of length n: the most grid positions (stride t) whose wrapped band of width s
 * meets some in-image patch span [x, x+w-1], over every patch position x = 0..n-w.
 * Counted exactly rather than by ceil((w+s-1)/t), which undercounts at the wrap seam when t ∤ n.
 */
export function axisDelta(n: number, band: number, stride: number, patch: number): number {
  if (patch < 1) return 0;
  const positions = axisPositions(n, stride);
  if (patch >= n) return positions.length;
  // band at p meets [x, x+w-1] iff p ∈ [x-s+1, x+w-1] (mod n): a window of w+s-1 residues.
  const windowLen = patch + band - 1;
  if (windowLen >= n) return positions.length;
  const hit = new Uint8Array(n);
  for (const p of positions) hit[p] = 1;
  let best = 0;
  for (let x = 0; x + patch <= n; x++) {
    let count = 0;
    for (let k = 0; k < windowLen; k++) count += hit[(((x - band + 1 + k) % n) + n) % n]!;
    if (count > best) best = count;
  }
  return best;
}

/** Δ: the most ablations that one patch of ph x pw pixels (anywhere in the image) can intersect. */
export function patchDelta(scheme: AblationScheme, geom: ImageGeometry, patchHeight: number, patchWidth: number): number {
  const { size, stride } = scheme;
  switch (scheme.kind) {
    case 'column':
      return axisDelta(geom.width, size, stride, patchWidth);
    case 'row':
      return axisDelta(geom.height, size, stride, patchHeight);
    case 'block':
      return axisDelta(geom.height, size, stride, patchHeight) * axisDelta(geom.width, size, stride, patchWidth);
  }
}

/** Δ for every square patch side m = 1..maxSide (index m-1). */
export function squareDeltas(scheme: AblationScheme, geom: ImageGeometry, maxSide: number): number[] {
  const out: number[] = [];
  for (let m = 1; m <= maxSide; m++) out.push(patchDelta(scheme, geom, m, m));
  return out;
}
