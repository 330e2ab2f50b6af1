import test from 'ava';
import { addVotes, parseRule, softmaxF32 } from '../../core/index.js';

test('softmax is float32 and sums to ~1', (t) => {
  const out = new Float32Array(3);
  softmaxF32(new Float32Array([1, 2, 3]), 0, 3, out);
  t.true(Math.abs(out[0]! + out[1]! + out[2]! - 1) < 1e-6);
  for (const v of out) t.is(v, Math.fround(v));
  t.true(out[2]! > out[1]! && out[1]! > out[0]!);
});

test('argmax votes once per ablation, lowest index on ties; thresholds vote for every class at or above θ', (t) => {
  // 3 ablations of image slot 0, 1 of slot 1; 3 classes
  const logits = new Float32Array([
    5, 5, 0, // tie → class 0
    0, 1, 1, // tie → class 1
    0, 0, 9, // class 2
    0, 0, 0, // uniform: softmax 1/3 each
  ]);
  const counts = [new Int32Array(6), new Int32Array(6), new Int32Array(6)];
  addVotes(logits, 3, [0, 0, 0, 1], ['argmax', 0.3, 0.5], counts);
  t.deepEqual(Array.from(counts[0]!), [1, 1, 1, 1, 0, 0]);
  // θ=0.3: row0 (0.5,0.5,~0) → 0,1; row1 (~0.16,0.42,0.42) → 1,2; row2 → 2; row3 (1/3 each) → all
  t.deepEqual(Array.from(counts[1]!), [1, 2, 2, 1, 1, 1]);
  // θ=0.5: row0 (0.498 each: the third class takes a little) none; row1 none; row2 → 2; row3 none
  t.deepEqual(Array.from(counts[2]!), [0, 0, 1, 0, 0, 0]);
});

test('threshold compares float32 softmax with float32(θ)', (t) => {
  // two equal logits and a far lower one: softmax is float32(0.5) for both
  const counts = [new Int32Array(2)];
  addVotes(new Float32Array([0, 0]), 2, [0], [0.5], counts);
  t.deepEqual(Array.from(counts[0]!), [1, 1]);
  // 0.7 is not representable: float32(0.7) = 0.699999988..., so a softmax of float32(0.7) votes
  const p = Math.fround(0.7);
  const logit = Math.log(p / (1 - p));
  const probs = new Float32Array(2);
  softmaxF32(new Float32Array([logit, 0]), 0, 2, probs);
  const c2 = [new Int32Array(2)];
  addVotes(new Float32Array([logit, 0]), 2, [0], [0.7], c2);
  t.is(c2[0]![0], probs[0]! >= Math.fround(0.7) ? 1 : 0);
});

test('rows owned by -1 are skipped; non-finite logits are an error', (t) => {
  const counts = [new Int32Array(2)];
  addVotes(new Float32Array([1, 0, 0, 1]), 2, [-1, 0], ['argmax'], counts);
  t.deepEqual(Array.from(counts[0]!), [0, 1]);
  t.throws(() => addVotes(new Float32Array([NaN, 0]), 2, [0], ['argmax'], counts), { message: /non-finite/ });
  t.throws(() => addVotes(new Float32Array([1, 0, 0]), 2, [0], ['argmax'], counts), { message: /expected 1 x 2/ });
});

test('parseRule', (t) => {
  t.is(parseRule('argmax'), 'argmax');
  t.is(parseRule('0.3'), 0.3);
  t.throws(() => parseRule('1.5'));
  t.throws(() => parseRule('x'));
});
