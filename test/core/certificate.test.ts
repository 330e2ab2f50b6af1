import test from 'ava';
import { certifyCounts, isCertified, largestCertifiedSide, smoothedPrediction } from '../../core/index.js';

test('prediction: most votes, lowest index on ties; all-zero counts abstain and predict 0', (t) => {
  t.deepEqual(smoothedPrediction([1, 5, 5, 2]), { prediction: 1, abstained: false });
  t.deepEqual(smoothedPrediction([0, 0, 0]), { prediction: 0, abstained: true });
  t.deepEqual(smoothedPrediction([0, 0, 1]), { prediction: 2, abstained: false });
});

test('certificate: gap > 2Δ certifies, gap = 2Δ only against higher class indices', (t) => {
  // Δ = 3: needs gap > 6, or gap = 6 with prediction index below the runner-up's
  t.true(isCertified([10, 3, 0], 0, 3)); // gap 7
  t.true(isCertified([9, 3, 0], 0, 3)); // gap 6 = 2Δ, 0 < 1
  t.false(isCertified([3, 9, 0], 1, 3)); // prediction 1 from counts [3,9,0]: gap 6 vs class 0, 1 > 0 fails
  t.true(isCertified([2, 9, 0], 1, 3)); // gap 7 vs class 0
  t.false(isCertified([8, 3, 0], 0, 3)); // gap 5
  // ties at exactly 2Δ in both orders, same counts mirrored
  t.true(isCertified([7, 1], 0, 3));
  t.false(isCertified([1, 7], 1, 3));
});

test('largest certified side stops at the first failing Δ and is 0 on abstention', (t) => {
  const deltas = [2, 3, 4, 5, 6];
  // gap 10: Δ=5 (side 4) is a tie at 2Δ won by the lower index; Δ=6 (side 5) fails
  t.is(largestCertifiedSide([12, 2, 0], deltas), 4);
  t.is(largestCertifiedSide([12, 2, 0], [2, 3, 4, 5, 6, 7]), 4);
  // the mirrored counts lose that tie: prediction 1 > runner-up 0
  t.is(largestCertifiedSide([2, 12, 0], deltas), 3);
  t.is(largestCertifiedSide([0, 0, 0], deltas), 0);
  t.is(largestCertifiedSide([3, 3, 0], deltas), 0);
  t.deepEqual(certifyCounts([0, 0, 0], deltas), { prediction: 0, abstained: true, certified: 0 });
});

test('threshold counts: several classes per ablation, the runner-up decides', (t) => {
  // with thresholds, counts can sum past the ablation count
  const counts = [20, 18, 3];
  t.is(largestCertifiedSide(counts, [1, 2]), 1); // gap 2 = 2Δ at Δ=1 and 0 < 1; fails at Δ=2
  t.true(isCertified(counts, 0, 1));
  t.false(isCertified(counts, 0, 2));
});
