import test from 'ava';
import {
  type AblationScheme,
  type SchemeKind,
  ablationCount,
  keptMask,
  patchDelta,
  squareDeltas,
} from '../../core/index.js';

// Independent definition of "kept": pixel (r, c) is kept by the ablation at (pr, pc) iff it lies
// in the wrapped band/block starting there.
function keptByDefinition(kind: SchemeKind, s: number, H: number, W: number, pr: number, pc: number, r: number, c: number): boolean {
  const inCol = (((c - pc) % W) + W) % W < s;
  const inRow = (((r - pr) % H) + H) % H < s;
  if (kind === 'column') return inCol;
  if (kind === 'row') return inRow;
  return inCol && inRow;
}

function positionsOf(kind: SchemeKind, t: number, H: number, W: number): [number, number][] {
  const rows = kind === 'column' ? [0] : Array.from({ length: Math.ceil(H / t) }, (_, i) => i * t);
  const cols = kind === 'row' ? [0] : Array.from({ length: Math.ceil(W / t) }, (_, i) => i * t);
  return rows.flatMap((r) => cols.map((c): [number, number] => [r, c]));
}

const SIZES: [number, number][] = [
  [5, 7],
  [6, 6],
  [7, 5],
  [8, 8],
];

test('kept masks match the wrapped band/block definition for every scheme, size and stride', (t) => {
  let checked = 0;
  for (const [H, W] of SIZES) {
    for (const kind of ['column', 'row', 'block'] as SchemeKind[]) {
      const limit = kind === 'column' ? W : kind === 'row' ? H : Math.min(H, W);
      for (let s = 1; s <= limit; s++) {
        for (let st = 1; st <= Math.max(H, W); st++) {
          const scheme: AblationScheme = { kind, size: s, stride: st };
          const pos = positionsOf(kind, st, H, W);
          t.is(ablationCount(scheme, { height: H, width: W }), pos.length);
          pos.forEach(([pr, pc], k) => {
            const m = keptMask(scheme, { height: H, width: W }, k);
            for (let r = 0; r < H; r++)
              for (let c = 0; c < W; c++) {
                if ((m[r * W + c] === 1) !== keptByDefinition(kind, s, H, W, pr, pc, r, c)) {
                  t.fail(`${kind} s=${s} t=${st} ${H}x${W} ablation ${k} pixel ${r},${c}`);
                  return;
                }
              }
            checked++;
          });
        }
      }
    }
  }
  t.true(checked > 1000);
});

test('Δ equals the brute-force maximum of ablations one patch touches (every scheme, size, stride, patch)', (t) => {
  let configs = 0;
  for (const [H, W] of SIZES) {
    for (const kind of ['column', 'row', 'block'] as SchemeKind[]) {
      const limit = kind === 'column' ? W : kind === 'row' ? H : Math.min(H, W);
      for (let s = 1; s <= limit; s++) {
        for (let st = 1; st <= Math.max(H, W); st++) {
          const scheme: AblationScheme = { kind, size: s, stride: st };
          const geom = { height: H, width: W };
          const K = ablationCount(scheme, geom);
          // 2D prefix sums of each ablation's kept mask: O(1) "does the patch touch a kept pixel".
          const prefix = Array.from({ length: K }, (_, k) => {
            const m = keptMask(scheme, geom, k);
            const p = new Int32Array((H + 1) * (W + 1));
            for (let r = 0; r < H; r++)
              for (let c = 0; c < W; c++)
                p[(r + 1) * (W + 1) + c + 1] = m[r * W + c]! + p[r * (W + 1) + c + 1]! + p[(r + 1) * (W + 1) + c]! - p[r * (W + 1) + c]!;
            return p;
          });
          for (let ph = 1; ph <= H; ph++) {
            for (let pw = 1; pw <= W; pw++) {
              let best = 0;
              for (let y = 0; y + ph <= H; y++)
                for (let x = 0; x + pw <= W; x++) {
                  let touched = 0;
                  for (const p of prefix) {
                    const sum = p[(y + ph) * (W + 1) + x + pw]! - p[y * (W + 1) + x + pw]! - p[(y + ph) * (W + 1) + x]! + p[y * (W + 1) + x]!;
                    if (sum > 0) touched++;
                  }
                  if (touched > best) best = touched;
                }
              const delta = patchDelta(scheme, geom, ph, pw);
              if (delta !== best) {
                t.fail(`${kind} s=${s} t=${st} on ${H}x${W}, patch ${ph}x${pw}: Δ=${delta}, brute force ${best}`);
                return;
              }
            }
          }
          configs++;
        }
      }
    }
  }
  t.true(configs > 300);
});

test('stride that does not divide the width: the seam makes Δ exceed ceil((w+s-1)/t)', (t) => {
  // W=10, s=2, t=3: positions 0,3,6,9; 9 and 0 are adjacent across the wrap.
  const scheme: AblationScheme = { kind: 'column', size: 2, stride: 3 };
  const geom = { height: 10, width: 10 };
  const closedForm = Math.ceil((2 + 2 - 1) / 3);
  t.is(closedForm, 1);
  t.is(patchDelta(scheme, geom, 2, 2), 2);
});

test('column stride 1: Δ = w + s - 1, capped at W', (t) => {
  const geom = { height: 32, width: 32 };
  const scheme: AblationScheme = { kind: 'column', size: 4, stride: 1 };
  t.is(patchDelta(scheme, geom, 5, 5), 8);
  t.is(patchDelta(scheme, geom, 32, 30), 32);
  t.deepEqual(squareDeltas(scheme, geom, 3), [4, 5, 6]);
  // row scheme looks at the patch height only, column at its width
  t.is(patchDelta({ kind: 'row', size: 4, stride: 1 }, geom, 2, 9), 5);
  t.is(patchDelta(scheme, geom, 2, 9), 12);
  // block: product of the per-axis counts
  t.is(patchDelta({ kind: 'block', size: 12, stride: 1 }, geom, 5, 5), 16 * 16);
});
