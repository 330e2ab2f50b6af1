// Ablations built on the device: an ONNX stage composed in front of the model that takes the
// decoded images and the ablations' positions and produces exactly the encoded ablations that
// core/encoding.ts builds on the host, so a GPU gets O(image) bytes per image instead of
// O(K x image). Same geometry as core/ablation.ts: pixel (r, c) is kept iff
// (r - row) mod H < rowLen and (c - col) mod W < colLen (the wrapped band or block), and the same
// encodings: levine6 (x, 1-x) or mask (x, 1), times the 0/1 keep mask, then (v - mean) / std.
//
// Exactness: every value is x, 1-x (one float32 subtraction, as Math.fround(1 - x)), 1 or 0,
// multiplied by exactly 1 or 0, so the stage's output equals the host's bit for bit. The host
// normalizes in float64 and rounds once; the stage does too when `normalizeIn` is 'float64'
// (exact on the CPU provider); 'float32' (for providers without doubles) can differ by 1 ulp.
import { type AblationScheme, type Encoding, type ImageGeometry, type Layout, ablationCount, encodedChannels, keptRanges } from '../../core/index.js';
import {
  DT,
  type OnnxModel,
  doubleTensor,
  floatTensor,
  freshNamer,
  int64Tensor,
  intAttr,
  intsAttr,
  node,
  tensorInput,
} from './onnx-graph.js';

export interface AblationStageSpec {
  geom: ImageGeometry;
  /** channels of the source image (1 or 3) */
  channels: number;
  encoding: Encoding;
  /** the model's input layout */
  layout: Layout;
  mean?: readonly number[];
  std?: readonly number[];
  /** arithmetic of the normalization (default float64: the host's) */
  normalizeIn?: 'float64' | 'float32';
}

/** Graph input names of a composed model. */
export const STAGE_IMAGES = 'patchcert_images';
export const STAGE_POSITIONS = 'patchcert_positions';

/**
 * The stage's ablations input for ablation indices [start, end) of a scheme: per ablation the
 * kept ranges of core/ablation.ts keptRanges, (row start, col start, rows kept, cols kept).
 */
export function stageAblations(scheme: AblationScheme, geom: ImageGeometry, start: number, end: number): Float32Array {
  const K = ablationCount(scheme, geom);
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= K && start < end)) {
    throw new RangeError(`ablation range [${start}, ${end}) is not inside 0..${K}`);
  }
  return stageAblationsOf(scheme, geom, Array.from({ length: end - start }, (_, i) => start + i));
}

/** The same for any list of ablation indices. */
export function stageAblationsOf(scheme: AblationScheme, geom: ImageGeometry, indices: readonly number[]): Float32Array {
  const out = new Float32Array(indices.length * 4);
  indices.forEach((k, a) => {
    const r = keptRanges(scheme, geom, k);
    out.set([r.rowStart, r.colStart, r.rowLen, r.colLen], a * 4);
  });
  return out;
}

/**
 * Rewrites `model` in place so that its image input `inputName` is computed by the stage from two
 * new inputs: patchcert_images [n, H, W, C] float32 (as decoded, values in [0,1]) and
 * patchcert_positions [A, 4] float32 (stageAblations: row, col, rows kept, cols kept per
 * ablation; any scheme on this geometry). The model then sees n x A rows,
 * image-major (row i*A + a is ablation a of image i), the order the executor counts votes in.
 */
export function composeAblationStage(model: OnnxModel, inputName: string, spec: AblationStageSpec): void {
  const g = model.graph;
  const at = g.input.findIndex((v) => v.name === inputName);
  if (at < 0) throw new Error(`the graph has no input "${inputName}" to build ablations for`);
  const { height: H, width: W } = spec.geom;
  const C = spec.channels;
  const E = encodedChannels(spec.encoding, C);
  const nchw = spec.layout === 'nchw';
  const fresh = freshNamer(g);
  const name = (s: string) => fresh(`patchcert_abl_${s}`);
  const inits = g.initializer;
  const nodes = [];
  const cf = (s: string, dims: number[], v: ArrayLike<number>) => {
    const n = name(s);
    inits.push(floatTensor(n, dims, v));
    return n;
  };
  const ci = (s: string, v: number[]) => {
    const n = name(s);
    inits.push(int64Tensor(n, [v.length], v));
    return n;
  };
  const op = (type: string, inputs: string[], s: string, attrs = [] as ReturnType<typeof intAttr>[]) => {
    const out = name(s);
    nodes.push(node(type, inputs, [out], name(`${s}_node`), attrs));
    return out;
  };

  // keep flags along one axis: [A, n] floats, 1 where (i - p) mod n < len
  const axisKeep = (axis: 'row' | 'col', n: number): string => {
    const idx = cf(`${axis}_index`, [1, n], Array.from({ length: n }, (_, i) => i));
    const p = op('Gather', [STAGE_POSITIONS, ci(`${axis}_pick`, [axis === 'row' ? 0 : 1])], `${axis}_pos`, [intAttr('axis', 1)]); // [A,1]
    const len = op('Gather', [STAGE_POSITIONS, ci(`${axis}_pick_len`, [axis === 'row' ? 2 : 3])], `${axis}_len`, [intAttr('axis', 1)]); // [A,1]
    const d = op('Sub', [idx, p], `${axis}_delta`); // [A,n], in -(n-1)..n-1
    const neg = op('Cast', [op('Less', [d, cf(`${axis}_zero`, [], [0])], `${axis}_isneg`)], `${axis}_neg`, [intAttr('to', DT.FLOAT)]);
    const wrapped = op('Add', [d, op('Mul', [neg, cf(`${axis}_n`, [], [n])], `${axis}_wrap`)], `${axis}_mod`); // (i - p) mod n
    return op('Cast', [op('Less', [wrapped, len], `${axis}_in`)], `${axis}_keep`, [intAttr('to', DT.FLOAT)]);
  };
  const rowKeep = axisKeep('row', H);
  const colKeep = axisKeep('col', W);
  // mask broadcast against [n, 1, E, H, W] (nchw) or [n, 1, H, W, E] (nhwc)
  const rowShape = nchw ? [1, -1, 1, H, 1] : [1, -1, H, 1, 1];
  const colShape = nchw ? [1, -1, 1, 1, W] : [1, -1, 1, W, 1];
  const mask = op('Mul', [op('Reshape', [rowKeep, ci('row_shape', rowShape)], 'row_5d'), op('Reshape', [colKeep, ci('col_shape', colShape)], 'col_5d')], 'mask');

  const chAxis = nchw ? 1 : 3;
  const x = nchw ? op('Transpose', [STAGE_IMAGES], 'x_nchw', [intsAttr('perm', [0, 3, 1, 2])]) : STAGE_IMAGES;
  const second =
    spec.encoding === 'levine6'
      ? op('Sub', [cf('one', [], [1]), x], 'x_inv')
      : op('Add', [op('Mul', [op('Gather', [x, ci('ch0', [0])], 'x_ch0', [intAttr('axis', chAxis)]), cf('zero', [], [0])], 'x_zero'), cf('one', [], [1])], 'x_ones');
  const enc = op('Concat', [x, second], 'encoded', [intAttr('axis', chAxis)]);
  const enc5 = op('Reshape', [enc, ci('enc_shape', nchw ? [-1, 1, E, H, W] : [-1, 1, H, W, E])], 'encoded_5d');
  let abl = op('Mul', [enc5, mask], 'ablated'); // [n, A, ...]

  const { mean, std } = spec;
  if (mean !== undefined && std !== undefined) {
    if (mean.length !== E || std.length !== E) throw new Error(`normalization needs ${E} values per encoded channel, got ${mean.length}/${std.length}`);
    const cdims = nchw ? [1, 1, E, 1, 1] : [1, 1, 1, 1, E];
    if ((spec.normalizeIn ?? 'float64') === 'float64') {
      const m = name('mean');
      const s = name('std');
      inits.push(doubleTensor(m, cdims, mean), doubleTensor(s, cdims, std));
      const d = op('Cast', [abl], 'ablated_f64', [intAttr('to', DT.DOUBLE)]);
      abl = op('Cast', [op('Div', [op('Sub', [d, m], 'centred'), s], 'scaled')], 'normalized', [intAttr('to', DT.FLOAT)]);
    } else {
      abl = op('Div', [op('Sub', [abl, cf('mean', cdims, mean)], 'centred'), cf('std', cdims, std)], 'normalized');
    }
  }
  // the last node writes the model's own input name, so the model's nodes stay as they are
  nodes.push(node('Reshape', [abl, ci('out_shape', nchw ? [-1, E, H, W] : [-1, H, W, E])], [inputName], name('rows_node')));

  g.input.splice(at, 1, tensorInput(STAGE_IMAGES, ['images', H, W, C]), tensorInput(STAGE_POSITIONS, ['ablations', 4]));
  g.node = [...nodes, ...g.node];
}
