// Vote rules: how one ablation's logits become a set of voted classes.
//
// Precision is fixed so every worker and backend agrees given equal logits: softmax is
// evaluated in float32 (every operation rounded with Math.fround; exp from V8's own libm;
// the normaliser summed in class order) and compared with float32(θ), as the paper's code
// compares float32 softmax with float32(θ). Argmax works on the logits, lowest index on ties.

/** 'argmax' votes for exactly one class; a number θ votes for every class with softmax ≥ θ. */
export type VoteRule = 'argmax' | number;

export function ruleLabel(rule: VoteRule): string {
  return rule === 'argmax' ? 'argmax' : String(rule);
}

export function parseRule(text: string): VoteRule {
  const t = text.trim();
  if (t === 'argmax') return 'argmax';
  const v = Number(t);
  if (t === '' || !Number.isFinite(v) || v <= 0 || v > 1) {
    throw new Error(`invalid vote threshold "${text}": expected "argmax" or a number in (0, 1]`);
  }
  return v;
}

export function validateRules(rules: readonly VoteRule[]): void {
  if (rules.length === 0) throw new Error('at least one vote rule (argmax or a threshold) is required');
  const seen = new Set<string>();
  for (const r of rules) {
    if (r !== 'argmax' && !(typeof r === 'number' && Number.isFinite(r) && r > 0 && r <= 1)) {
      throw new Error(`invalid vote rule ${String(r)}`);
    }
    const l = ruleLabel(r);
    if (seen.has(l)) throw new Error(`vote rule ${l} listed twice`);
    seen.add(l);
  }
}

/** Float32 softmax of logits[offset .. offset+n) into out[0..n). */
export function softmaxF32(logits: ArrayLike<number>, offset: number, n: number, out: Float32Array): void {
  let max = logits[offset]!;
  for (let i = 1; i < n; i++) if (logits[offset + i]! > max) max = logits[offset + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.fround(Math.exp(Math.fround(logits[offset + i]! - max)));
    out[i] = e;
    sum = Math.fround(sum + e);
  }
  for (let i = 0; i < n; i++) out[i] = Math.fround(out[i]! / sum);
}

export function argmaxAt(logits: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  let bestV = logits[offset]!;
  for (let i = 1; i < n; i++) {
    const v = logits[offset + i]!;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/**
 * Adds the votes of `rows` ablations to per-image count vectors.
 * logits: rows x numClasses; owner[row] = slot of the image that row belongs to, or -1 to skip
 * the row (an image that failed to load still occupies its rows so batches keep their shape);
 * counts[ruleIdx]: slots x numClasses integer counts, added to in place.
 * Throws on a non-finite logit (a broken model must not turn into silent votes).
 */
export function addVotes(
  logits: Float32Array,
  numClasses: number,
  owner: ArrayLike<number>,
  rules: readonly VoteRule[],
  counts: Int32Array[],
): void {
  const rows = owner.length;
  if (logits.length !== rows * numClasses) {
    throw new Error(`model returned ${logits.length} values for ${rows} inputs, expected ${rows} x ${numClasses} classes`);
  }
  const probs = new Float32Array(numClasses);
  const thetas = rules.map((r) => (r === 'argmax' ? NaN : Math.fround(r)));
  const needSoftmax = rules.some((r) => r !== 'argmax');
  for (let row = 0; row < rows; row++) {
    const slot = owner[row]!;
    if (slot < 0) continue;
    const off = row * numClasses;
    for (let i = 0; i < numClasses; i++) {
      if (!Number.isFinite(logits[off + i]!)) throw new Error(`model returned a non-finite logit (${logits[off + i]}) for input ${row}`);
    }
    const base = slot * numClasses;
    if (needSoftmax) softmaxF32(logits, off, numClasses, probs);
    for (let r = 0; r < rules.length; r++) {
      const c = counts[r]!;
      if (rules[r] === 'argmax') {
        c[base + argmaxAt(logits, off, numClasses)]!++;
      } else {
        const theta = thetas[r]!;
        for (let i = 0; i < numClasses; i++) if (probs[i]! >= theta) c[base + i]!++;
      }
    }
  }
}
