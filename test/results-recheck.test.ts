// The committed results (docs/results/*/) recheck from their per-image counts: every image's
// prediction and certified patch side follow from its vote counts by the certificate rule
// (re-derived here independently of core/certificate.ts, and by core's own), and every figure of
// summary.json follows from the records.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { certifyCounts, squareDeltas } from '../core/index.js';

const root = [path.resolve(fileURLToPath(import.meta.url), '../../..'), process.cwd()].find((d) => fs.existsSync(path.join(d, 'docs', 'results'))) ?? process.cwd();
const base = path.join(root, 'docs', 'results');
const dirs = fs.readdirSync(base).filter((d) => fs.existsSync(path.join(base, d, 'images.jsonl.gz')) && fs.existsSync(path.join(base, d, 'summary.json')));

/** Levine & Feizi's rule as stated in DESIGN.md: most votes (lowest index on ties); certified for
 * side m when n_c - n_o > 2Δ_m, or = 2Δ_m with c < o, for every other class o. */
function recheck(counts: number[], deltas: number[]): { prediction: number; certified: number } {
  let c = 0;
  for (let i = 1; i < counts.length; i++) if (counts[i]! > counts[c]!) c = i;
  if (counts.every((v) => v === 0)) return { prediction: 0, certified: 0 };
  let side = 0;
  for (let m = 1; m <= deltas.length; m++) {
    const d = deltas[m - 1]!;
    const ok = counts.every((n, o) => o === c || counts[c]! - n > 2 * d || (counts[c]! - n === 2 * d && c < o));
    if (!ok) break;
    side = m;
  }
  return { prediction: c, certified: side };
}

test('there are committed results to recheck', (t) => {
  t.true(dirs.length >= 3, dirs.join(', '));
});

for (const d of dirs) {
  test(`docs/results/${d}: certificates and summary follow from the committed counts`, (t) => {
    const summary = JSON.parse(fs.readFileSync(path.join(base, d, 'summary.json'), 'utf8'));
    const recs = gunzipSync(fs.readFileSync(path.join(base, d, 'images.jsonl.gz'))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l));
    const job = summary.job;
    const deltas = squareDeltas(job.scheme, job.geometry, job.maxPatch);
    t.is(recs.length, summary.images);
    for (const s of summary.smoothed) {
      let correct = 0;
      const certifiedCorrect = new Array<number>(job.maxPatch).fill(0);
      for (const r of recs) {
        const o = r.results[s.rule];
        t.is(o.counts.reduce((a: number, b: number) => a + b, 0) <= summary.ablationsPerImage * (s.rule === 'argmax' ? 1 : job.numClasses), true);
        const mine = recheck(o.counts, deltas);
        const core = certifyCounts(o.counts, deltas);
        if (mine.prediction !== o.prediction || mine.certified !== o.certified || core.certified !== o.certified) {
          t.fail(`image ${r.index} rule ${s.rule}: counts ${JSON.stringify(o.counts)} give ${JSON.stringify(mine)}, recorded ${o.prediction}/${o.certified}`);
        }
        if (o.prediction === r.label) {
          correct++;
          for (let m = 1; m <= Math.min(o.certified, job.maxPatch); m++) certifiedCorrect[m - 1]!++;
        }
      }
      t.is(s.correct, correct, `rule ${s.rule}: correct`);
      t.deepEqual(s.certifiedCorrect, certifiedCorrect, `rule ${s.rule}: certified correct per side`);
      t.is(s.cleanAccuracy, correct / recs.length);
    }
  });
}
