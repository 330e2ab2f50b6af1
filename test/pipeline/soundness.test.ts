// Soundness of the certificate on a real (tiny) model: for every image reported certified at
// side m, no m x m patch — at any position, with extreme, random or structured pixel values —
// changes the smoothed prediction.
import test from 'ava';
import { join } from 'node:path';
import {
  type EncodeSpec,
  type VoteRule,
  ablationCount,
  addVotes,
  encodeAblation,
  encodedSize,
  isCertified,
  patchDelta,
  smoothedPrediction,
  squareDeltas,
  largestCertifiedSide,
} from '../../core/index.js';
import { createBackend } from '../../worker/backends/index.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';

const H = 8, W = 8;
const RULES: VoteRule[] = ['argmax', 0.3];

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** Same family as training/make_fixtures.py synth_gray: bright top rows, bottom rows or stripes. */
function synthImage(cls: number, rand: () => number): Float32Array {
  const img = new Float32Array(H * W);
  const colGain = Array.from({ length: W }, () => rand() ** 2);
  for (let r = 0; r < H; r++) {
    const on = cls === 0 ? r < 4 : cls === 1 ? r >= 4 : r % 2 === 0;
    for (let c = 0; c < W; c++) img[r * W + c] = Math.fround(Math.min(1, rand() * 0.4 + (on ? 0.5 * colGain[c]! : 0)));
  }
  return img;
}

test('no m x m patch changes a prediction certified at m (tiny-gray, column s=2, onnx)', async (t) => {
  const { backend } = await createBackend(join(FIXTURE_MODELS, 'tiny-gray'), 'onnx', { threads: 1 });
  t.teardown(() => backend.dispose());
  const scheme = { kind: 'column' as const, size: 2, stride: 1 };
  const geom = { height: H, width: W };
  const spec: EncodeSpec = { scheme, geom, channels: 1, encoding: 'levine6', layout: backend.layout };
  const K = ablationCount(scheme, geom);
  const size = encodedSize(spec);
  const C = backend.numClasses;
  const deltas = squareDeltas(scheme, geom, 4);

  /** Counts for a list of images, all ablations each, in one backend call. */
  async function countsOf(images: Float32Array[]): Promise<Int32Array[]> {
    const input = new Float32Array(images.length * K * size);
    const owner = new Int32Array(images.length * K);
    images.forEach((img, i) => {
      for (let k = 0; k < K; k++) {
        encodeAblation(spec, img, k, input, (i * K + k) * size);
        owner[i * K + k] = i;
      }
    });
    const logits = await backend.run(input, images.length * K);
    const counts = RULES.map(() => new Int32Array(images.length * C));
    addVotes(logits, C, owner, RULES, counts);
    return counts;
  }

  const rand = rng(7);
  const images = Array.from({ length: 60 }, (_, i) => synthImage(i % 3, rand));
  const clean = await countsOf(images);
  let certifiedChecks = 0;
  let patchesTried = 0;
  for (let r = 0; r < RULES.length; r++) {
    for (let i = 0; i < images.length; i++) {
      const counts = clean[r]!.subarray(i * C, (i + 1) * C);
      const side = largestCertifiedSide(counts, deltas);
      if (side === 0) continue;
      const { prediction } = smoothedPrediction(counts);
      t.true(isCertified(counts, prediction, patchDelta(scheme, geom, side, side)));
      certifiedChecks++;
      const variants: Float32Array[] = [];
      for (let y = 0; y + side <= H; y++) {
        for (let x = 0; x + side <= W; x++) {
          const fills: ((pr: number, pc: number) => number)[] = [
            () => 0,
            () => 1,
            () => rand(),
            (pr, pc) => ((pr + pc) % 2 === 0 ? 1 : 0),
            (pr) => (pr % 2 === 0 ? 1 : 0), // the "stripes" class pattern
            (pr, pc) => 1 - images[i]![pr * W + pc]!,
          ];
          for (const fill of fills) {
            const img = Float32Array.from(images[i]!);
            for (let pr = y; pr < y + side; pr++) for (let pc = x; pc < x + side; pc++) img[pr * W + pc] = Math.fround(fill(pr, pc));
            variants.push(img);
          }
        }
      }
      const attacked = await countsOf(variants);
      for (let v = 0; v < variants.length; v++) {
        const c = attacked[r]!.subarray(v * C, (v + 1) * C);
        const p = smoothedPrediction(c);
        if (p.prediction !== prediction || p.abstained) {
          t.fail(`rule ${RULES[r]} image ${i} certified at ${side}: patch variant ${v} moved the prediction ${prediction} → ${p.prediction}`);
          return;
        }
        // The counts themselves moved by at most Δ per class, as the proof says.
        const delta = patchDelta(scheme, geom, side, side);
        for (let k = 0; k < C; k++) t.true(Math.abs(c[k]! - counts[k]!) <= delta);
      }
      patchesTried += variants.length;
    }
  }
  t.log(`${certifiedChecks} certified (image, rule) pairs, ${patchesTried} patched images checked`);
  t.true(certifiedChecks >= 10, 'the tiny model should certify a fair share of its images');
});
