// The kept view of an ablation, for band-native base classifiers: only the pixels an ablation
// keeps (column H x s, row s x W, block s x s), read in wrap order from its position, plus the
// position itself. A patch that misses the band cannot change this input, so a classifier of it
// is a valid base classifier for the same certificate, at about s/W of a dense model's cost.
import { type AblationScheme, type ImageGeometry, keptRanges } from './ablation.js';

/** "full": the whole H x W encoded ablation (zero outside the kept pixels); "kept": the kept view. */
export type InputView = 'full' | 'kept';

export const INPUT_VIEWS: readonly InputView[] = ['full', 'kept'];

/** Height and width of the kept view: column H x s, row s x W, block s x s. */
export function keptGeometry(scheme: AblationScheme, geom: ImageGeometry): ImageGeometry {
  return {
    height: scheme.kind === 'column' ? geom.height : scheme.size,
    width: scheme.kind === 'row' ? geom.width : scheme.size,
  };
}

/** Geometry of the model input for a view: the image's, or the kept view's. */
export function viewGeometry(view: InputView | undefined, scheme: AblationScheme, geom: ImageGeometry): ImageGeometry {
  return view === 'kept' ? keptGeometry(scheme, geom) : { height: geom.height, width: geom.width };
}

/**
 * The `position` input of a kept-view model for ablations [start, end): (row, col) of each
 * ablation's top-left kept pixel as float32, repeated for each of `images` images (image-major,
 * as the executor lays out a tile's rows).
 */
export function keptPositions(scheme: AblationScheme, geom: ImageGeometry, start: number, end: number, images = 1): Float32Array {
  const span = end - start;
  const out = new Float32Array(images * span * 2);
  for (let k = start; k < end; k++) {
    const r = keptRanges(scheme, geom, k);
    for (let i = 0; i < images; i++) {
      const o = (i * span + (k - start)) * 2;
      out[o] = r.rowStart;
      out[o + 1] = r.colStart;
    }
  }
  return out;
}

/** Image row and column of each kept-view row and column of ablation `index`, in wrap order. */
export function keptIndices(scheme: AblationScheme, geom: ImageGeometry, index: number): { rows: Int32Array; cols: Int32Array } {
  const r = keptRanges(scheme, geom, index);
  const kg = keptGeometry(scheme, geom);
  const rows = new Int32Array(kg.height);
  const cols = new Int32Array(kg.width);
  for (let i = 0; i < kg.height; i++) rows[i] = (r.rowStart + i) % geom.height;
  for (let j = 0; j < kg.width; j++) cols[j] = (r.colStart + j) % geom.width;
  return { rows, cols };
}
