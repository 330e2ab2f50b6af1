// Messages the test injects into a running job: duplicates and stale results are ignored,
// malformed ones are reported and counted nowhere; workers and coordinator keep running.
import test from 'ava';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { runCoordinator } from '../../coordinator/coordinator.js';
import { HEARTBEAT_SUBJECT, controlSubject, ensureStreams, resultsSubject, workSubject } from '../../cluster/layout.js';
import { PROTO_VERSION, decodeResult, encodePartialVotes, encodeUnitFailure } from '../../proto/index.js';
import { rawEncode, rawPartialVotes } from '../helpers/raw-proto.js';
import { distSetup, waitWorkersLive } from '../helpers/dist-harness.js';
import { expectedAccumulator, fakeCounts } from '../../lab/fake-executor.js';
import { countsDigest } from '../../lab/results.js';

test('a duplicate is ignored; a different result for a merged unit is an alarm, settled by a further worker', async (t) => {
  const d = await distSetup(t, { images: 20 });
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 60 } });
  // a second honest worker: the disputed unit needs a second opinion from someone other than w1
  d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 60 } });
  await waitWorkersLive(d.servers, ['w1', 'w2']);
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const subject = resultsSubject(d.job.jobId, 'w1');
  const staleSubject = resultsSubject(d.job.jobId, 'stale-worker');
  let injected = 0;
  const sub = nc.subscribe(subject, {
    max: 1,
    callback: (_e, m) => {
      const body = decodeResult(m.data, m.subject);
      if (body.type !== 'votes') return;
      const v = body.votes;
      const inject = async () => {
        // the same bytes again (a worker re-sending under another message id)
        await js.publish(subject, m.data, { msgID: `dup-${v.unitId}` });
        // a stale, different result for the same unit (a late worker with other numbers)
        const other = v.counts.map((c) => c.map((x) => (x > 0 ? x - 1 : x)));
        await js.publish(staleSubject, encodePartialVotes({ ...v, counts: other, workerId: 'stale-worker', attempt: 1 }), { msgID: `stale-${v.unitId}` });
        // a failure report for the unit, after its success
        await js.publish(staleSubject, encodeUnitFailure({ jobId: v.jobId, unitId: v.unitId, range: v.range, error: 'late', workerId: 'stale-worker', attempt: 3, kind: 'lost' }));
        // votes for a unit that is not in this job's plan (an older plan of the job)
        const r = { imgStart: 0, imgEnd: 2, ablStart: 0, ablEnd: 8 };
        await js.publish(subject, encodePartialVotes({ ...v, unitId: 'i0-2.a0-8', range: r, counts: fakeCounts(d.job, r) }));
        injected = 4;
      };
      void inject();
    },
  });
  t.teardown(() => sub.unsubscribe());
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  t.is(injected, 4);
  t.is(r.state, 'done');
  t.true(r.duplicates >= 1, `duplicates ${r.duplicates}`);
  // the different result is an alarm, never "ignored": a further worker settled the unit
  t.is(r.alarms.length, 1);
  t.is(r.alarms[0]!.status, 'resolved');
  t.deepEqual(r.alarms[0]!.outvoted, ['stale-worker']);
  t.true(r.flagged);
  t.is(r.rejected.length, 1);
  t.regex(r.rejected[0]!.error, /i0-2\.a0-8, which is not a unit of job/);
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
});

test('malformed messages are reported and nothing is counted from them', async (t) => {
  const d = await distSetup(t, { images: 12 });
  const nc = await connect({ servers: d.servers });
  t.teardown(() => nc.close());
  await ensureStreams(await jetstreamManager(nc), { ackWaitMs: 2000 });
  const js = jetstream(nc);
  const subject = resultsSubject(d.job.jobId, 'evil');
  const range = { imgStart: 0, imgEnd: 2, ablStart: 0, ablEnd: 16 };
  const good = {
    jobId: d.job.jobId,
    unitId: 'i0-2.a0-16',
    range,
    counts: fakeCounts(d.job, range),
    failures: [],
    workerId: 'evil',
    backend: 'fake',
    device: 'cpu',
    versions: {},
    timings: { preprocessMs: 0, inferenceMs: 0, totalMs: 0 },
    attempt: 1,
    modelSha256: d.job.model.sha256,
  };
  // raw protobuf, for messages the real encoders refuse to produce
  const raw = (o: Record<string, unknown>) => rawEncode('ResultMessage', o);
  const bad: [string, Uint8Array][] = [
    ['garbage', new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02])],
    ['empty envelope', raw({ version: PROTO_VERSION })],
    ['future version', raw({ version: 99, votes: { version: 99 } })],
    ['negative count', rawPartialVotes({ ...good, counts: good.counts.map((c, i) => (i === 0 ? Int32Array.from(c, (x, j) => (j === 3 ? -5 : x)) : c)) })],
    ['count above span', rawPartialVotes({ ...good, counts: good.counts.map((c) => Int32Array.from(c, (x, j) => (j === 0 ? 17 : x))) })],
    ['other job', rawPartialVotes({ ...good, jobId: 'someone-else' })],
    ['unit id vs range', raw({ version: 1, votes: { version: 1, jobId: d.job.jobId, unitId: 'i0-2.a0-8', range, rules: [], workerId: 'evil', modelSha256: d.job.model.sha256, attempt: 1 } })],
    ['out-of-range index', raw({ version: 1, votes: { version: 1, jobId: d.job.jobId, unitId: 'i0-4294967295.a0-16', range: { ...range, imgEnd: 4294967295 }, rules: [{ counts: [1] }], workerId: 'evil', modelSha256: d.job.model.sha256, attempt: 1 } })],
    ['wrong class count', encodePartialVotes({ ...good, counts: good.counts.map((c) => c.slice(0, 10)) })],
    ['wrong model', encodePartialVotes({ ...good, modelSha256: 'cd'.repeat(32) })],
    // a worker's credentials publish only on its own subject: a message naming another worker is refused
    ['sender mismatch (votes)', encodePartialVotes({ ...good, workerId: 'w1' })],
    ['sender mismatch (failure)', encodeUnitFailure({ jobId: d.job.jobId, unitId: good.unitId, range, error: 'forged', workerId: 'w2', attempt: 3, kind: 'error' })],
    ['bad failure kind', raw({ version: 1, failure: { version: 1, jobId: d.job.jobId, unitId: '', error: 'x', workerId: 'evil', kind: 'whatever' } })],
  ];
  for (const [i, [, data]] of bad.entries()) await js.publish(subject, data, { msgID: `bad-${i}` });
  // junk where workers and coordinator listen
  await js.publish(workSubject(d.job.jobId), new Uint8Array([1, 2, 3, 4, 5]), { msgID: 'bad-work' });
  nc.publish(HEARTBEAT_SUBJECT, new Uint8Array([9, 9, 9]));
  nc.publish(controlSubject(d.job.jobId), new Uint8Array([9, 9, 9]));
  await nc.flush();
  d.procs.worker(d.servers, { workerId: 'w1', knobs: { delayMs: 5 } });
  d.procs.worker(d.servers, { workerId: 'w2', knobs: { delayMs: 5 } });
  const r = await runCoordinator(d.coordOpts({ unitImages: 2 }));
  t.is(r.state, 'done', 'the control-subject junk did not cancel the job');
  t.deepEqual(r.failedUnits, []);
  t.is(countsDigest(r.accumulator), countsDigest(expectedAccumulator(d.job)));
  const errors = r.rejected.map((x) => x.error);
  t.is(errors.length, bad.length + 1, errors.join('\n'));
  for (const e of errors.slice(0, bad.length)) t.regex(e, new RegExp(`^(malformed|refused) message on patchcert\\.results\\.${d.job.jobId}\\.evil: `));
  t.regex(errors.join('\n'), /impossible count -5/);
  t.regex(errors.join('\n'), /version 99 is not supported/);
  t.regex(errors.join('\n'), /does not match the subject's job/);
  t.regex(errors.join('\n'), /computed with model cdcd/);
  t.regex(errors.join('\n'), /sender mismatch: published on worker evil's subject, the message names worker w1/);
  t.regex(errors.join('\n'), /sender mismatch: published on worker evil's subject, the message names worker w2/);
  t.regex(errors.join('\n'), /refused a work message: malformed message on patchcert\.work\./);
  t.true(d.procs.all.every((p) => p.running), 'workers survived');
});
