import test from 'ava';
import { VoteAccumulator, isTileAligned, planUnits, tilesOf, unitId } from '../../core/index.js';

test('units cover every (image, ablation) exactly once and lie on the tile grid', (t) => {
  for (const [N, K] of [[1, 1], [10, 7], [33, 32], [100, 224]] as const) {
    for (const tile of [{ images: 1, ablations: 1 }, { images: 3, ablations: Math.min(K, 4) }, { images: 8, ablations: K }]) {
      for (const size of [{ images: 1, ablations: 1 }, { images: 5, ablations: 9 }, { images: 1000, ablations: 1000 }]) {
        const units = planUnits(N, K, tile, size);
        const seen = new Uint8Array(N * K);
        for (const u of units) {
          t.true(isTileAligned(u, tile, N, K), unitId(u));
          for (const tl of tilesOf(u, tile, N, K)) {
            t.true(tl.imgEnd - tl.imgStart <= tile.images && tl.ablEnd - tl.ablStart <= tile.ablations);
            for (let i = tl.imgStart; i < tl.imgEnd; i++) for (let a = tl.ablStart; a < tl.ablEnd; a++) seen[i * K + a]!++;
          }
        }
        t.true(seen.every((v) => v === 1), `N=${N} K=${K} tile=${JSON.stringify(tile)} size=${JSON.stringify(size)}`);
      }
    }
  }
});

// Deterministic pseudo-votes for (image, ablation): what a model would say.
function vote(i: number, a: number, C: number): number {
  return (i * 7 + a * a * 3 + ((i * a) % 5)) % C;
}

function unitCounts(u: { imgStart: number; imgEnd: number; ablStart: number; ablEnd: number }, C: number): Int32Array[] {
  const c = new Int32Array((u.imgEnd - u.imgStart) * C);
  for (let i = u.imgStart; i < u.imgEnd; i++) for (let a = u.ablStart; a < u.ablEnd; a++) c[(i - u.imgStart) * C + vote(i, a, C)]!++;
  return [c];
}

test('merging is order independent, sharding independent, and ignores duplicates', (t) => {
  const N = 23, K = 17, C = 4;
  const reference = new VoteAccumulator(N, K, C, 1);
  reference.merge({ imgStart: 0, imgEnd: N, ablStart: 0, ablEnd: K, counts: unitCounts({ imgStart: 0, imgEnd: N, ablStart: 0, ablEnd: K }, C) });
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (const size of [{ images: 1, ablations: 1 }, { images: 4, ablations: 5 }, { images: 23, ablations: 3 }]) {
    const units = planUnits(N, K, { images: 1, ablations: 1 }, size);
    const order = units.map((u) => ({ u, r: rand() })).sort((a, b) => a.r - b.r).map((x) => x.u);
    const acc = new VoteAccumulator(N, K, C, 1);
    for (const u of order) {
      t.is(acc.merge({ ...u, counts: unitCounts(u, C) }), 'merged');
      if (rand() < 0.3) t.is(acc.merge({ ...u, counts: unitCounts(u, C) }), 'duplicate');
    }
    t.deepEqual(Array.from(acc.counts[0]!), Array.from(reference.counts[0]!));
    for (let i = 0; i < N; i++) t.true(acc.isImageComplete(i));
  }
});

test('overlapping units and impossible counts are refused', (t) => {
  const acc = new VoteAccumulator(4, 10, 2, 1);
  acc.merge({ imgStart: 0, imgEnd: 2, ablStart: 0, ablEnd: 6, counts: [new Int32Array([6, 0, 3, 3])] });
  t.throws(() => acc.merge({ imgStart: 0, imgEnd: 1, ablStart: 0, ablEnd: 5, counts: [new Int32Array([5, 0])] }), { message: /past its 10 ablations/ });
  t.throws(() => acc.merge({ imgStart: 2, imgEnd: 3, ablStart: 0, ablEnd: 2, counts: [new Int32Array([3, 0])] }), { message: /impossible count/ });
  t.throws(() => acc.merge({ imgStart: 3, imgEnd: 5, ablStart: 0, ablEnd: 2, counts: [new Int32Array(4)] }), { message: /outside the job/ });
  t.is(acc.mergedUnits, 1);
});
