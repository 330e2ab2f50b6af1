import test from 'ava';
import { type EncodeSpec, encodeAblation, encodedSize, keptMask } from '../../core/index.js';

const H = 4, W = 5, C = 3;
const image = Float32Array.from({ length: H * W * C }, (_, i) => Math.fround(((i * 37) % 255) / 255));

function at(spec: EncodeSpec, buf: Float32Array, e: number, r: number, c: number): number {
  const E = encodedSize(spec) / (H * W);
  return spec.layout === 'nchw' ? buf[e * H * W + r * W + c]! : buf[(r * W + c) * E + e]!;
}

for (const layout of ['nchw', 'nhwc'] as const) {
  test(`levine6 (${layout}): (x, 1-x) on kept pixels, (0, 0) elsewhere`, (t) => {
    const spec: EncodeSpec = { scheme: { kind: 'column', size: 2, stride: 1 }, geom: { height: H, width: W }, channels: C, encoding: 'levine6', layout };
    t.is(encodedSize(spec), H * W * 6);
    for (let k = 0; k < W; k++) {
      const out = new Float32Array(encodedSize(spec)).fill(7); // stale values must be overwritten
      encodeAblation(spec, image, k, out, 0);
      const mask = keptMask(spec.scheme, spec.geom, k);
      for (let r = 0; r < H; r++)
        for (let c = 0; c < W; c++)
          for (let ch = 0; ch < C; ch++) {
            const x = image[(r * W + c) * C + ch]!;
            const kept = mask[r * W + c] === 1;
            t.is(at(spec, out, ch, r, c), kept ? x : 0);
            t.is(at(spec, out, C + ch, r, c), kept ? Math.fround(1 - x) : 0);
          }
    }
  });

  test(`mask (${layout}): x on kept pixels plus a 0/1 mask channel`, (t) => {
    const spec: EncodeSpec = { scheme: { kind: 'block', size: 2, stride: 1 }, geom: { height: H, width: W }, channels: C, encoding: 'mask', layout };
    const out = new Float32Array(encodedSize(spec) * 2);
    encodeAblation(spec, image, 7, out, encodedSize(spec));
    const mask = keptMask(spec.scheme, spec.geom, 7);
    const slot = out.subarray(encodedSize(spec));
    let kept = 0;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const m = mask[r * W + c]!;
        kept += m;
        t.is(at(spec, slot, C, r, c), m);
        for (let ch = 0; ch < C; ch++) t.is(at(spec, slot, ch, r, c), m ? image[(r * W + c) * C + ch]! : 0);
      }
    t.is(kept, 4);
    t.true(out.subarray(0, encodedSize(spec)).every((v) => v === 0));
  });
}

test('normalisation applies (v - mean) / std to every encoded channel, null pixels included', (t) => {
  const spec: EncodeSpec = {
    scheme: { kind: 'column', size: 1, stride: 1 }, geom: { height: H, width: W }, channels: 1, encoding: 'levine6', layout: 'nchw',
    mean: [0.5, 0.25], std: [0.5, 2],
  };
  const img = Float32Array.from({ length: H * W }, (_, i) => i / (H * W));
  const out = new Float32Array(encodedSize(spec));
  encodeAblation(spec, img, 0, out, 0);
  t.is(out[0]!, Math.fround((img[0]! - 0.5) / 0.5));
  t.is(out[1]!, Math.fround((0 - 0.5) / 0.5));
  t.is(out[H * W + 1]!, Math.fround((0 - 0.25) / 2));
});
