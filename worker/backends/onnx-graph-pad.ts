// The WebGPU channel workaround for microsoft/onnxruntime#29651: onnxruntime's WebGPU provider
// computes wrong convolutions (NHWC, its default layout) when the input channel count is a
// multiple of 3, not of 4, and above 3: every levine6 RGB model (6 channels) is hit. Padding such
// a convolution's input and weights with zero channels up to a multiple of 4 gives the same
// products (x*0 adds +0 to every sum) and a channel count the provider gets right; it measured
// 2.2x faster on lavapipe than the other workaround, preferredLayout NCHW.
import { type OnnxModel, constantDims, freshNamer, int64Tensor, node, num } from './onnx-graph.js';

/** Channel counts the provider is known to get wrong (issue #29651): 6, 9, 15, 18, … */
export function isBadConvChannels(c: number): boolean {
  return c > 3 && c % 3 === 0 && c % 4 !== 0;
}

export interface PaddedConv {
  node: string;
  channels: number;
  paddedTo: number;
}

/**
 * Rewrites, in place, every ungrouped Conv whose weight has a bad input channel count: a Pad node
 * in front of its data input and of its weight (constant-folded at session build) adds zero
 * channels up to the next multiple of `multiple`. Returns the convolutions changed.
 */
export function padConvChannels(model: OnnxModel, multiple = 4, bad: (c: number) => boolean = isBadConvChannels): PaddedConv[] {
  const g = model.graph;
  const fresh = freshNamer(g);
  const out: PaddedConv[] = [];
  const nodes = [];
  for (const n of g.node) {
    if (n.opType === 'Conv' && (!n.domain || n.domain === 'ai.onnx') && n.input[0] && n.input[1]) {
      const group = num(n.attribute?.find((a) => a.name === 'group')?.i ?? 1);
      const w = constantDims(g, n.input[1]);
      const c = w?.[1];
      if (group === 1 && w && w.length >= 3 && c !== undefined && bad(c)) {
        const to = Math.ceil(c / multiple) * multiple;
        const rank = w.length;
        // pads: begin of every axis, then end of every axis; only the end of axis 1 grows
        const pads = new Array<number>(2 * rank).fill(0);
        pads[rank + 1] = to - c;
        const padsName = fresh(`${n.name || 'conv'}_chpad_pads`);
        g.initializer.push(int64Tensor(padsName, [2 * rank], pads));
        const x = fresh(`${n.input[0]}_chpad`);
        const wp = fresh(`${n.input[1]}_chpad`);
        nodes.push(node('Pad', [n.input[0], padsName], [x], fresh(`${n.name || 'conv'}_chpad_x`)));
        nodes.push(node('Pad', [n.input[1], padsName], [wp], fresh(`${n.name || 'conv'}_chpad_w`)));
        n.input[0] = x;
        n.input[1] = wp;
        out.push({ node: n.name ?? '', channels: c, paddedTo: to });
      }
    }
    nodes.push(n);
  }
  g.node = nodes;
  return out;
}
