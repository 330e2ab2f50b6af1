// Operations through the CLI: `certify --nats` refuses an --out folder holding another job before
// the job exists on the cluster; `jobs` lists jobs; `status` of a job whose coordinator is gone, or
// that was cancelled, says so and gives no ETA.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { type JobStatus, formatStatus, jobStatus } from '../../cluster/jobs.js';
import { distSetup } from '../helpers/dist-harness.js';
import { FIXTURE_MODELS } from '../../lab/paths.js';
import { writeTinyGrayIdx } from '../helpers/tiny-data.js';

const TINY_GRAY = join(FIXTURE_MODELS, 'tiny-gray');

test('certify --nats into an --out holding another job is refused before the job is created; jobs lists what exists', async (t) => {
  const d = await distSetup(t, { images: 1 });
  const data = join(d.dir, 'data');
  await writeTinyGrayIdx(data, 6);
  const nats = d.servers.join(',');
  const out = join(d.dir, 'out');
  await mkdir(out);
  await writeFile(join(out, 'job.json'), JSON.stringify({ jobId: 'someone-elses-job' }));
  const jobId = `ops-${process.pid}`;
  const common = ['certify', '--nats', nats, '--model', TINY_GRAY, '--data', data, '--backend', 'onnx', '--job-id', jobId, '--quiet'];
  const c = d.procs.cli('refused', [...common, '--out', out]);
  t.is((await c.waitExit(60_000)).code, 1);
  t.regex(c.output(), /output folder .*out holds a different job \(someone-elses-job, this one is ops-\d+\)/);
  t.false((await jobStatus(jobId, { servers: d.servers }).catch(() => ({ exists: false }))).exists, 'no job was created');
  t.is(JSON.parse(await readFile(join(out, 'job.json'), 'utf8')).jobId, 'someone-elses-job', 'the other job\'s folder is untouched');
  const file = join(d.dir, 'a-file');
  await writeFile(file, 'x');
  const f = d.procs.cli('on-file', [...common, '--out', file]);
  t.is((await f.waitExit(60_000)).code, 1);
  t.regex(f.output(), /--out .*a-file is a file, not a folder/);

  // a job that does run is listed by `jobs`
  d.procs.cli('worker', ['worker', '--nats', nats, '--backend', 'onnx', '--threads', '1', '--worker-id', 'ow1']);
  const ok = d.procs.cli('ok', [...common, '--out', join(d.dir, 'good')]);
  t.is((await ok.waitExit(60_000)).code, 0, ok.output());
  const jobs = d.procs.cli('jobs', ['jobs', '--nats', nats]);
  t.is((await jobs.waitExit(30_000)).code, 0);
  t.regex(jobs.output(), new RegExp(`^${jobId}\\s+done\\s+\\d+/\\d+ units, 6 images, model tiny-gray`, 'm'));
});

test('status: a running job whose coordinator stopped writing is "last seen N s ago (gone?)" with no ETA; a cancelled one has no ETA', (t) => {
  const now = 1_800_000_000_000;
  const progress = { jobId: 'j', state: 'running', unitsTotal: 10, unitsDone: 4, unitsFailed: 0, imagesTotal: 80, imagesComplete: 32, ablationsDone: 1, ablationsTotal: 2, ablationsPerSecond: 120, etaSeconds: 18, liveWorkers: 2, elapsedSeconds: 5, sentAtMs: now };
  const s = (state: 'running' | 'cancelled', agoS: number, extra = {}): JobStatus => ({ jobId: 'j', exists: true, state: { jobId: 'j', state, updatedAtMs: now - agoS * 1000, coordinator: 'h:1', progress, ...extra } });
  const live = formatStatus(s('running', 2), now);
  t.regex(live, /ETA 18 s, 2 live workers/);
  t.notRegex(live, /last seen/);
  const gone = formatStatus(s('running', 95), now);
  t.regex(gone, /coordinator last seen 95 s ago \(gone\? run the same command again to resume\)/);
  t.notRegex(gone, /ETA|live workers/);
  const released = formatStatus(s('running', 5, { released: true }), now);
  t.regex(released, /no coordinator: the last one stopped 5 s ago/);
  t.notRegex(released, /ETA/);
  const cancelled = formatStatus(s('cancelled', 1, { reason: 'wrong model' }), now);
  t.regex(cancelled, /^job j: cancelled \(wrong model\)/);
  t.notRegex(cancelled, /ETA|live workers|last seen/);
  t.regex(cancelled, /units 4\/10 \(0 failed\), images 32\/80/);
});
