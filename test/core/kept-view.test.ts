// The kept view is exactly the kept pixels of the full encoding, read in wrap order, for every
// scheme, encoding, layout and stride; positions are the ablations' top-left corners.
import test from 'ava';
import {
  type AblationScheme,
  type EncodeSpec,
  type Encoding,
  type Layout,
  ablationCount,
  ablationPosition,
  encodeAblation,
  encodedChannels,
  encodedSize,
  keptGeometry,
  keptMask,
  keptPositions,
} from '../../core/index.js';

const geom = { height: 7, width: 9 };
const schemes: AblationScheme[] = [
  { kind: 'column', size: 3, stride: 1 },
  { kind: 'column', size: 4, stride: 2 },
  { kind: 'row', size: 2, stride: 3 },
  { kind: 'block', size: 4, stride: 2 },
];

for (const scheme of schemes)
  for (const encoding of ['levine6', 'mask'] as Encoding[])
    for (const layout of ['nchw', 'nhwc'] as Layout[])
      test(`kept view = kept pixels of the full encoding: ${scheme.kind} s=${scheme.size} t=${scheme.stride} ${encoding} ${layout}`, (t) => {
        const C = 3;
        const img = Float32Array.from({ length: geom.height * geom.width * C }, (_, i) => Math.fround(((i * 37) % 101) / 100));
        const mean = encoding === 'mask' ? [0.1, 0.2, 0.3, 0.5] : undefined;
        const std = encoding === 'mask' ? [0.5, 0.25, 2, 1] : undefined;
        const full: EncodeSpec = { scheme, geom, channels: C, encoding, layout, ...(mean ? { mean, std: std! } : {}) };
        const kept: EncodeSpec = { ...full, view: 'kept' };
        const kg = keptGeometry(scheme, geom);
        const E = encodedChannels(encoding, C);
        t.is(encodedSize(kept), E * kg.height * kg.width);
        const K = ablationCount(scheme, geom);
        const pos = keptPositions(scheme, geom, 0, K, 2);
        const fb = new Float32Array(encodedSize(full));
        const kb = new Float32Array(encodedSize(kept)).fill(NaN);
        for (let k = 0; k < K; k++) {
          encodeAblation(full, img, k, fb, 0);
          encodeAblation(kept, img, k, kb, 0);
          const { row, col } = ablationPosition(scheme, geom, k);
          t.deepEqual([pos[2 * k], pos[2 * k + 1], pos[2 * (K + k)], pos[2 * (K + k) + 1]], [row, col, row, col]);
          const mask = keptMask(scheme, geom, k);
          let keptCount = 0;
          for (const m of mask) keptCount += m;
          t.is(keptCount, kg.height * kg.width, 'the view holds every kept pixel once');
          for (let i = 0; i < kg.height; i++)
            for (let j = 0; j < kg.width; j++) {
              const r = (row + i) % geom.height;
              const c = (col + j) % geom.width;
              t.is(mask[r * geom.width + c], 1);
              for (let e = 0; e < E; e++) {
                const fv = fb[layout === 'nchw' ? e * geom.height * geom.width + r * geom.width + c : (r * geom.width + c) * E + e];
                const kv = kb[layout === 'nchw' ? (e * kg.height + i) * kg.width + j : (i * kg.width + j) * E + e];
                if (fv !== kv) t.fail(`ablation ${k} view (${i},${j}) channel ${e}: kept ${kv} != full ${fv}`);
              }
            }
        }
      });
