// The unit ledger on its own: when a unit's counts may be believed, what raises an alarm, when a
// failure is final. No NATS: these are the rules the coordinator applies to what arrives.
import test from 'ava';
import { UnitLedger, countsDigest, isReplicated } from '../../coordinator/unit-ledger.js';

const honest = [Int32Array.from([3, 1, 0, 4])];
const forged = [Int32Array.from([4, 0, 0, 4])];
const D = countsDigest(honest, []);
const F = countsDigest(forged, []);
const vote = (workerId: string, digest: string) => ({ workerId, digest, payload: `${workerId}:${digest.slice(0, 4)}` });
const fail = (workerId: string) => ({ unitId: 'u', error: 'boom', attempts: 1, kind: 'error', workerId });

test('digests: equal counts agree, a moved vote or a failed position does not', (t) => {
  t.is(countsDigest([Int32Array.from([3, 1, 0, 4])], []), D);
  t.not(F, D);
  t.not(countsDigest(honest, [2]), D);
  t.is(countsDigest(honest, [2, 5]), countsDigest(honest, [5, 2]));
});

test('replicated fraction: by hash, the same in every run, about the fraction asked', (t) => {
  const ids = Array.from({ length: 2000 }, (_, i) => `i${i}-${i + 1}.a0-8`);
  const picked = ids.filter((u) => isReplicated('job', u, 0.1));
  t.deepEqual(ids.filter((u) => isReplicated('job', u, 0.1)), picked);
  t.true(picked.length > 140 && picked.length < 260, String(picked.length));
  t.true(ids.every((u) => isReplicated('job', u, 1)));
  t.false(ids.some((u) => isReplicated('job', u, 0)));
});

test('a plain unit settles on its first result; a replicated one only on two distinct workers that agree', (t) => {
  const plain = new UnitLedger<string>(() => false, 6);
  t.is((plain.vote('u', vote('w1', D), 0) as { type: string }).type, 'settle');
  t.is(plain.vote('u', vote('w1', D), 0), 'duplicate');
  const rep = new UnitLedger<string>(() => true, 6);
  t.is((rep.vote('u', vote('w1', D), 0) as { type: string }).type, 'none');
  t.false(rep.isSettled('u'));
  t.deepEqual(rep.spoken('u'), ['w1']);
  t.is(rep.vote('u', vote('w1', D), 0), 'duplicate', 'the same worker twice is not two opinions');
  t.false(rep.isSettled('u'));
  t.is((rep.vote('u', vote('w2', D), 1) as { type: string }).type, 'settle');
  t.deepEqual(rep.accepted('u')?.workers, ['w1', 'w2']);
  t.deepEqual(rep.alarmList(), []);
});

test('a different result is an alarm: the unit leaves the totals until two other workers agree, and the liar is named', (t) => {
  const l = new UnitLedger<string>(() => false, 6);
  t.is((l.vote('u', vote('liar', F), 0) as { type: string }).type, 'settle');
  const c = l.vote('u', vote('w1', D), 1) as { type: string; previous?: string };
  t.is(c.type, 'unsettle', 'a tie: nothing is believed');
  t.is(c.previous, `liar:${F.slice(0, 4)}`);
  t.is(l.alarmList()[0]!.status, 'open');
  t.deepEqual(l.spoken('u'), ['liar', 'w1']);
  const s = l.vote('u', vote('w2', D), 2) as { type: string; payload?: string };
  t.is(s.type, 'settle');
  t.is(s.payload, `w1:${D.slice(0, 4)}`);
  const [a] = l.alarmList();
  t.is(a!.status, 'resolved');
  t.deepEqual(a!.outvoted, ['liar']);
  t.deepEqual(l.outvoted(), ['liar']);
});

test('one worker with two answers is not believed by itself', (t) => {
  const l = new UnitLedger<string>(() => false, 6);
  l.vote('u', vote('w1', D), 0);
  t.is((l.vote('u', vote('w1', F), 1) as { type: string }).type, 'unsettle', 'it keeps its first, which alone no longer suffices: out of the totals');
  t.is(l.need('u'), 2);
  t.false(l.isSettled('u'));
  t.is(l.alarmList().length, 1);
  t.is((l.vote('u', vote('w2', D), 2) as { type: string }).type, 'settle', 'w1 (first answer) and w2 agree');
  t.true(l.isSettled('u'));
});

test('a failure is evidence about its worker: final on a second worker, or on a repeat at an open offer', (t) => {
  const l = new UnitLedger<string>(() => false, 6);
  t.is((l.failure('u', fail('bad'), 0) as { type: string }).type, 'none');
  t.false(l.isClosed('u'));
  l.offered('u', 1);
  t.is((l.failure('u', fail('bad'), 1) as { type: string }).type, 'none', 'again, but on an offer it was excluded from: not final');
  l.offered('u', 2, true);
  const f = l.failure('u', fail('bad'), 2) as { type: string; record?: { error: string } };
  t.is(f.type, 'fail');
  t.regex(f.record!.error, /failed again on bad, the only worker live/);
  const two = new UnitLedger<string>(() => false, 6);
  two.failure('u', fail('a'), 0);
  const g = two.failure('u', fail('b'), 1) as { type: string; record?: { error: string } };
  t.is(g.type, 'fail');
  t.regex(g.record!.error, /failed on a and b/);
  // a result after a failure overrules it
  const ok = new UnitLedger<string>(() => false, 6);
  ok.failure('u', fail('bad'), 0);
  t.is((ok.vote('u', vote('good', D), 1) as { type: string }).type, 'settle');
  t.is(ok.failure('u', fail('other'), 2), 'overruled');
});

test('a unit that goes through maxRounds offers without agreement fails as disputed', (t) => {
  const l = new UnitLedger<string>(() => false, 2);
  l.vote('u', vote('a', D), 0);
  l.vote('u', vote('b', F), 1);
  const c = l.vote('u', vote('c', countsDigest([Int32Array.from([0, 0, 8, 0])], [])), 2) as { type: string; record?: { kind: string; error: string } };
  t.is(c.type, 'fail');
  t.is(c.record!.kind, 'disputed');
  t.regex(c.record!.error, /no two workers agreed on its counts after 3 offers \(a, b, c\)/);
  t.is(l.alarmList()[0]!.status, 'failed');
});
