// The wire format: every message round-trips, and bad bytes or values are refused with a
// "malformed message on SUBJECT: ..." error (never a crash, never a silent default).
import test from 'ava';
import {
  MalformedMessageError,
  PROTO_VERSION,
  decodeCancel,
  decodeHeartbeat,
  decodeJobSpec,
  decodeProgress,
  decodeResult,
  decodeWorkUnit,
  encodeCancel,
  encodeHeartbeat,
  encodeJobSpec,
  encodePartialVotes,
  encodeProgress,
  encodeUnitFailure,
  encodeWorkUnit,
  jobIdOfSubject,
  workerIdOfSubject,
} from '../../proto/index.js';
import { rawEncode, rawPartialVotes } from '../helpers/raw-proto.js';

const SHA = 'ab'.repeat(32);
const range = { imgStart: 4, imgEnd: 6, ablStart: 0, ablEnd: 8 };
const raw = rawEncode;
const S = 'patchcert.results.job-1';

test('the schema loads from the package root (works from dist/)', (t) => {
  t.true(encodeCancel({ jobId: 'j', reason: '', requestedAtMs: 0 }).length > 0);
});

test('WorkUnit round-trips and is validated', (t) => {
  const m = { jobId: 'job-1', unitId: 'i4-6.a0-8', range, attempt: 1, maxAttempts: 3, modelSha256: SHA, excludeWorkers: [] as string[], round: 0 };
  t.deepEqual(decodeWorkUnit(encodeWorkUnit(m), 'patchcert.work.job-1', 'job-1'), m);
  // a re-offer carries its round and the workers that must not take it
  const re = { ...m, round: 2, excludeWorkers: ['w1', 'w2'] };
  t.deepEqual(decodeWorkUnit(encodeWorkUnit(re), 'patchcert.work.job-1', 'job-1'), re);
  t.throws(() => decodeWorkUnit(encodeWorkUnit({ ...m, excludeWorkers: ['bad id'] }), 'w'), { message: /worker id "bad id" is not valid/ });
  t.throws(() => decodeWorkUnit(encodeWorkUnit(m), 'patchcert.work.job-2', 'job-2'), { message: /^malformed message on patchcert\.work\.job-2: job id "job-1" does not match/ });
  t.throws(() => decodeWorkUnit(encodeWorkUnit({ ...m, unitId: 'i4-6.a0-9' }), 'w'), { message: /unit id "i4-6\.a0-9" does not match its range/ });
  t.throws(() => decodeWorkUnit(encodeWorkUnit({ ...m, range: { ...range, imgEnd: 4 }, unitId: 'i4-4.a0-8' }), 'w'), { message: /empty range/ });
  t.throws(() => decodeWorkUnit(encodeWorkUnit({ ...m, maxAttempts: 0 }), 'w'), { message: /max_attempts out of range/ });
  t.throws(() => decodeWorkUnit(encodeWorkUnit({ ...m, modelSha256: 'xyz' }), 'w'), { message: /model_sha256 must be 64/ });
  t.throws(() => decodeWorkUnit(raw('WorkUnit', { ...m, version: 2 }), 'w'), { message: /WorkUnit version 2 is not supported/ });
  t.throws(() => decodeWorkUnit(raw('WorkUnit', { ...m, version: 0 }), 'w'), { message: /version 0 is not supported/ });
  t.throws(() => decodeWorkUnit(new Uint8Array([0x0a, 0xff]), 'w'), { instanceOf: MalformedMessageError, message: /^malformed message on w: not a valid WorkUnit/ });
  t.throws(() => decodeWorkUnit(raw('WorkUnit', { ...m, version: 1, jobId: 'bad id!' }), 'w'), { message: /not a valid job id/ });
});

test('PartialVotes round-trips with packed counts, failures, versions and timings', (t) => {
  const v = {
    jobId: 'job-1',
    unitId: 'i4-6.a0-8',
    range,
    counts: [Int32Array.from([8, 0, 0, 3, 5, 0]), Int32Array.from([7, 1, 0, 0, 0, 0])],
    failures: [{ position: 5, index: 105, source: 'x/5.png', error: 'corrupt' }],
    workerId: 'host-1_gpu0',
    backend: 'onnx',
    device: 'cpu',
    versions: { 'onnxruntime-node': '1.30.0' },
    timings: { preprocessMs: 1.5, inferenceMs: 20, totalMs: 22 },
    attempt: 2,
    modelSha256: SHA,
    round: 1,
  };
  const b = decodeResult(encodePartialVotes(v), S, 'job-1');
  t.is(b.type, 'votes');
  if (b.type !== 'votes') return;
  t.deepEqual(b.votes, v);
  // a count above the unit's span or below zero cannot come from a real executor
  for (const bad of [9, -1]) {
    const bad1 = { ...v, counts: [Int32Array.from([bad, 0, 0, 0, 0, 0]), v.counts[1]!] };
    t.throws(() => decodeResult(rawPartialVotes(bad1), S, 'job-1'), { message: new RegExp(`^malformed message on ${S}: .*impossible count ${bad} \\(span 8`) });
    t.throws(() => encodePartialVotes(bad1), { message: new RegExp(`^cannot encode PartialVotes: .*impossible count ${bad}`) });
  }
  t.throws(() => decodeResult(rawPartialVotes({ ...v, failures: [{ ...v.failures[0]!, position: 9 }] }), S), { message: /failed image at position 9 outside the unit/ });
  t.throws(() => decodeResult(rawPartialVotes({ ...v, counts: [] }), S), { message: /carries no vote counts/ });
  t.throws(() => decodeResult(rawPartialVotes({ ...v, workerId: 'has space' }), S), { message: /worker id "has space" is not valid/ });
  t.throws(() => decodeResult(rawPartialVotes({ ...v, timings: { ...v.timings, totalMs: NaN } }), S), { message: /timings\.total_ms must be a finite number/ });
  // long error texts are clipped on the way out, and refused if longer on the way in
  const long = decodeResult(encodePartialVotes({ ...v, failures: [{ ...v.failures[0]!, error: 'e'.repeat(10000) }] }), S);
  t.true(long.type === 'votes' && long.votes.failures[0]!.error.length <= 4096);
});

test('UnitFailure round-trips, with or without a unit', (t) => {
  const f = { jobId: 'job-1', unitId: 'i4-6.a0-8', range, error: 'boom', workerId: 'w1', attempt: 3, kind: 'error' as const, round: 0 };
  t.deepEqual(decodeResult(encodeUnitFailure(f), S), { type: 'failure', failure: f });
  const anon = { jobId: 'job-1', unitId: '', error: 'malformed work', workerId: 'w1', attempt: 1, kind: 'malformed' as const, round: 3 };
  t.deepEqual(decodeResult(encodeUnitFailure(anon), S), { type: 'failure', failure: anon });
  t.throws(() => decodeResult(raw('ResultMessage', { version: 1, failure: { ...f, version: 1, kind: 'nope' } }), S), { message: /unknown failure kind "nope"/ });
  t.throws(() => decodeResult(raw('ResultMessage', { version: 1 }), S), { message: /carries neither votes nor a failure/ });
  t.throws(() => decodeResult(raw('ResultMessage', { version: 3, failure: { ...f, version: 1 } }), S), { message: /ResultMessage version 3/ });
});

test('JobSpec, Heartbeat, Progress and Cancel round-trip', (t) => {
  const j = { jobId: 'job-1', specJson: '{"a":1}', maxAttempts: 3, unitImages: 8, unitAblations: 32, unitsTotal: 10, createdAtMs: 1700000000000, replicate: 0.25 };
  t.deepEqual(decodeJobSpec(encodeJobSpec(j), 'KV'), j);
  t.throws(() => decodeJobSpec(encodeJobSpec({ ...j, unitsTotal: 0 }), 'KV'), { message: /unitsTotal must be a positive integer/ });
  const h = { workerId: 'w1', host: 'h', backend: 'onnx', device: 'cpu', concurrency: 2, inFlight: ['job-1/i0-2.a0-8'], unitsDone: 5, unitsFailed: 0, startedAtMs: 1, sentAtMs: 2, state: 'running' as const };
  t.deepEqual(decodeHeartbeat(encodeHeartbeat(h), 'patchcert.heartbeat'), h);
  t.throws(() => decodeHeartbeat(raw('Heartbeat', { ...h, version: 1, state: 'zombie' }), 'hb'), { message: /unknown worker state/ });
  const p = { jobId: 'job-1', state: 'running', unitsTotal: 10, unitsDone: 4, unitsFailed: 1, imagesTotal: 80, imagesComplete: 40, ablationsDone: 1280, ablationsTotal: 2560, ablationsPerSecond: 100.5, etaSeconds: -1, liveWorkers: 3, elapsedSeconds: 12.5, sentAtMs: 5 };
  t.deepEqual(decodeProgress(encodeProgress(p), 'p'), p);
  const c = { jobId: 'job-1', reason: 'stop', requestedAtMs: 7 };
  t.deepEqual(decodeCancel(encodeCancel(c), 'patchcert.control.job-1', 'job-1'), c);
  t.throws(() => decodeCancel(encodeCancel(c), 'patchcert.control.job-2', 'job-2'), { message: /does not match the subject's job "job-2"/ });
});

test('encoders refuse values protobuf cannot carry', (t) => {
  t.throws(() => encodeWorkUnit({ jobId: 'j', unitId: 'i0-1.a0-1', range: { imgStart: -1, imgEnd: 1, ablStart: 0, ablEnd: 1 }, attempt: 1, maxAttempts: 1, modelSha256: SHA } as never), { message: /cannot encode/ });
  t.is(PROTO_VERSION, 1);
});

test('job ids from subjects', (t) => {
  t.is(jobIdOfSubject('patchcert.results.job-1.w-1'), 'job-1');
  t.is(jobIdOfSubject('patchcert.results.job-1'), undefined, 'a results subject ends with its sender');
  t.is(workerIdOfSubject('patchcert.results.job-1.w-1'), 'w-1');
  t.is(workerIdOfSubject('patchcert.work.job-1'), undefined);
  t.is(jobIdOfSubject('patchcert.work.a_b-C'), 'a_b-C');
  t.is(jobIdOfSubject('patchcert.work.a.b'), undefined);
  t.is(jobIdOfSubject('other.work.a'), undefined);
});
