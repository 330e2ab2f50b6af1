// The distributed commands of the CLI: `coordinator` (also `certify --nats URL`), `worker`,
// `status JOB` and `cancel JOB`. Each is a thin layer over runCoordinator / runWorker /
// jobStatus / cancelJob with the same option names. cli/commands.ts lists them.
import { parseArgs } from 'node:util';
import { type NumericOption, checkNumericOption } from '../core/index.js';
import { CERTIFY_FLAGS, type Flags, certifyOptionsFrom } from './options.js';
import { ProgressBar } from './progress.js';
import { createExecutorFactory } from '../worker/executor-factory.js';
import { runWorker } from '../worker/nats-worker.js';
import type { BackendName, DatasetSpec } from '../worker/types.js';
import { type CoordinatorResult, runCoordinator } from '../coordinator/coordinator.js';
import { cancelJob, formatJobList, formatStatus, jobStatus, listJobs } from '../cluster/jobs.js';
import type { NatsConnectOptions } from '../cluster/connect.js';
import { formatSummary } from '../outputs/job-outputs.js';
import { prepareJob } from '../pipeline/prepare-job.js';
import { claimOutputFolder } from '../outputs/out-folder.js';

export interface DistributedCommand {
  summary: string;
  run(args: string[]): Promise<number>;
}

/** NATS connection flags shared by every distributed command (environment: NATS_*). */
export const NATS_FLAGS = {
  nats: { type: 'string' },
  'nats-user': { type: 'string' },
  'nats-password': { type: 'string' },
  'nats-token': { type: 'string' },
  'nats-creds': { type: 'string' },
  'nats-nkey': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'inbox-prefix': { type: 'string' },
} as const;

export const NATS_HELP = `NATS options (or the environment: NATS_URL, NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY,
NATS_CA, NATS_CERT, NATS_KEY, NATS_INBOX_PREFIX):
  --nats URL[,URL]          server(s), default nats://127.0.0.1:4222
  --nats-user U --nats-password P | --nats-token T | --nats-creds FILE | --nats-nkey SEED|FILE
  --tls-ca FILE --tls-cert FILE --tls-key FILE
  --inbox-prefix P          subject prefix of this client's reply inboxes (default _INBOX.worker.<id> for a
                            worker, _INBOX.coordinator.<job> for a coordinator, _INBOX.operator otherwise)`;

type NatsFlags = { [K in keyof typeof NATS_FLAGS]?: string };

export function natsOptionsFromFlags(f: NatsFlags): NatsConnectOptions {
  const o: NatsConnectOptions = {};
  if (f.nats) o.servers = f.nats.split(',').map((s) => s.trim()).filter(Boolean);
  if (f['nats-user']) o.user = f['nats-user'];
  if (f['nats-password']) o.password = f['nats-password'];
  if (f['nats-token']) o.token = f['nats-token'];
  if (f['nats-creds']) o.creds = f['nats-creds'];
  if (f['nats-nkey']) o.nkey = f['nats-nkey'];
  if (f['tls-ca']) o.tlsCa = f['tls-ca'];
  if (f['tls-cert']) o.tlsCert = f['tls-cert'];
  if (f['tls-key']) o.tlsKey = f['tls-key'];
  if (f['inbox-prefix']) o.inboxPrefix = f['inbox-prefix'];
  return o;
}

/** Integer flags, checked against core/numeric-options.ts like every other numeric option. */
function posInt(name: NumericOption, v: string | undefined): number | undefined {
  return checkNumericOption(name, v);
}

function fraction(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 1)) throw new Error(`--${name} must be a fraction in [0, 1], got "${v}"`);
  return n;
}

function seconds(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number of seconds, got "${v}"`);
  return Math.round(n * 1000);
}

export const COORDINATOR_FLAGS = {
  ...CERTIFY_FLAGS,
  ...NATS_FLAGS,
  'unit-passes': { type: 'string' },
  'max-attempts': { type: 'string' },
  'ack-wait': { type: 'string' },
  replicas: { type: 'string' },
  replicate: { type: 'string' },
  'keep-results': { type: 'boolean' },
  'no-upload-model': { type: 'boolean' },
} as const;

export const COORDINATOR_HELP = `usage: patchcert coordinator --nats URL --model M --data D --out DIR [certify options] [options]

Creates (or resumes: same options = same job id) a distributed job, publishes its units to the
PATCHCERT_WORK stream, merges the workers' results and writes the same outputs as certify.
  --unit-images N --unit-ablations N   unit size (default: about --unit-passes forward passes)
  --unit-passes N           forward passes per unit when no size is given (default 4096)
  --max-attempts N          attempts per unit before it is reported failed (default 3)
  --ack-wait S              seconds a worker may hold a unit without a heartbeat (default 30)
  --replicas N              stream replicas (3 on a JetStream cluster; default 1)
  --replicate F             fraction of units (0 to 1, picked by hash) computed by two distinct workers
                            and accepted only when their counts are byte-equal (default 0). Whatever F,
                            a unit on which two workers disagree is recomputed by a third.
  --keep-results            keep the job's results in the stream when done
  --no-upload-model         do not copy the model into the PATCHCERT_MODELS object store
  --job-id ID               name the job (default: derived from the options, so the same command resumes)

Exit status: 0 every unit certified; 2 some units or images failed (a rerun of the same command
retries the failed units); 3 cancelled or stopped; 4 workers disagreed on some unit (the job is
flagged: summary.json "alarms" names them); 1 an error.
${NATS_HELP}`;

async function coordinatorCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(COORDINATOR_HELP + '\n');
    return 0;
  }
  const { values } = parseArgs({ args, options: COORDINATOR_FLAGS, allowPositionals: false, strict: true });
  const flags = values as Flags & NatsFlags & Record<string, string | boolean | undefined>;
  const certify = certifyOptionsFrom(flags);
  if (certify.fresh) {
    throw new Error('--fresh does not apply to a distributed job: its results are kept on the cluster under its job id; give another --job-id (and --out) to start over');
  }
  const prepared = await prepareJob(certify);
  // before the job exists on the cluster: an --out that is a file or holds another job is refused now
  await claimOutputFolder(certify.out, prepared.job);
  const quiet = flags.quiet === true;
  const bar = new ProgressBar();
  const log = quiet ? () => {} : (s: string) => process.stderr.write(`${s}\n`);
  const opt = <T>(v: T | undefined) => v;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Always said, --quiet too: it is what `patchcert status` and `cancel` take.
  process.stderr.write(`job ${prepared.job.jobId} (patchcert status ${prepared.job.jobId} shows its progress)\n`);
  let r: CoordinatorResult;
  try {
    r = await runCoordinator({
      ...natsOptionsFromFlags(flags),
      job: prepared.job,
      output: { dir: certify.out, items: prepared.dataset.items },
      ...(certify.unitImages !== undefined ? { unitImages: certify.unitImages } : {}),
      ...(posInt('unit-ablations', flags['unit-ablations'] as string | undefined) !== undefined ? { unitAblations: posInt('unit-ablations', flags['unit-ablations'] as string)! } : {}),
      ...(posInt('unit-passes', flags['unit-passes'] as string | undefined) !== undefined ? { unitPasses: posInt('unit-passes', flags['unit-passes'] as string)! } : {}),
      ...(posInt('max-attempts', flags['max-attempts'] as string | undefined) !== undefined ? { maxAttempts: posInt('max-attempts', flags['max-attempts'] as string)! } : {}),
      ...(seconds('ack-wait', flags['ack-wait'] as string | undefined) !== undefined ? { ackWaitMs: seconds('ack-wait', flags['ack-wait'] as string)! } : {}),
      ...(posInt('replicas', flags.replicas as string | undefined) !== undefined ? { replicas: posInt('replicas', flags.replicas as string)! } : {}),
      ...(fraction('replicate', flags.replicate as string | undefined) !== undefined ? { replicate: fraction('replicate', flags.replicate as string)! } : {}),
      keepResults: flags['keep-results'] === true,
      uploadModel: flags['no-upload-model'] !== true,
      signal: controller.signal,
      log: (s) => {
        bar.end();
        log(s);
      },
      onProgress: quiet
        ? undefined
        : (p) =>
            bar.update({
              label: `job ${p.jobId}: units`,
              done: p.unitsDone + p.unitsFailed,
              total: p.unitsTotal,
              rate: `images ${p.imagesComplete}/${p.imagesTotal}, ${p.ablationsPerSecond.toFixed(0)} ablations/s, ${p.liveWorkers} workers`,
              ...(opt(p.etaSeconds) !== undefined && p.etaSeconds >= 0 ? { etaSeconds: p.etaSeconds } : {}),
            }),
    });
  } finally {
    bar.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (r.state !== 'done') {
    process.stderr.write(`job ${r.jobId} ${r.state}; ${r.accumulator.mergedUnits}/${r.unitsTotal} units merged${r.state === 'stopped' ? ' (run the same command again to resume)' : ''}\n`);
    return 3;
  }
  const summary = r.outputs!.summary;
  process.stdout.write(formatSummary(summary) + '\n');
  for (const f of summary.failedImages.slice(0, 20)) process.stdout.write(`failed image #${f.index} ${f.source}: ${f.error}\n`);
  for (const u of r.failedUnits) process.stdout.write(`failed unit ${u.unitId} after ${u.attempts} attempt(s) on ${u.workerId}: ${u.error}\n`);
  for (const x of r.rejected.slice(0, 20)) process.stdout.write(`rejected: ${x.error}\n`);
  for (const a of r.alarms) {
    const votes = a.votes.map((v) => `${v.workerId}=${v.digest.slice(0, 12)}`).join(', ');
    process.stdout.write(`ALARM unit ${a.unitId}: workers returned different counts (${votes}); ${a.status}${a.outvoted?.length ? `, outvoted: ${a.outvoted.join(', ')}` : ''}\n`);
  }
  process.stdout.write(`results in ${certify.out} (images.jsonl, summary.json, certified.csv, certified.svg)\n`);
  const failedImages = summary.failedImages.length;
  process.stdout.write(
    `${r.unitsTotal - r.failedUnits.length}/${r.unitsTotal} units certified, ${r.failedUnits.length} failed; ${summary.certifiedImages}/${summary.images} images certified, ${failedImages} failed; ${r.alarms.length} alarms${r.flagged ? ' (job flagged)' : ''}\n`,
  );
  return exitStatus(r.flagged, r.failedUnits.length + failedImages);
}

/** 4 outranks 2: a disagreement between workers says the results need a look, failures only that some are missing. */
export function exitStatus(flagged: boolean, failures: number): number {
  if (flagged) return 4;
  return failures > 0 ? 2 : 0;
}

export const WORKER_FLAGS = {
  ...NATS_FLAGS,
  concurrency: { type: 'string' },
  'worker-id': { type: 'string' },
  backend: { type: 'string' },
  threads: { type: 'string' },
  'prep-threads': { type: 'string' },
  'model-cache': { type: 'string' },
  'data-root': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'max-failures-in-a-row': { type: 'string' },
  quiet: { type: 'boolean' },
} as const;

export const WORKER_HELP = `usage: patchcert worker --nats URL [options]

Pulls units of any job from the PATCHCERT_WORK stream, runs them and publishes partial votes.
SIGTERM/SIGINT drains: no new units, in-flight units finish (or are released after --drain-timeout).
  --concurrency N           units in flight (default 2: keeps the backend busy across units)
  --worker-id ID            letters, digits, _ and - (it ends the worker's results subject); default <host>-<pid>
  --backend B               auto | webgpu | cuda | tensorrt | onnx | tfjs-node-gpu | tfjs-node | tfjs-wasm (default auto;
                            auto takes cuda, then a hardware WebGPU adapter, never a software one)
  --threads N --prep-threads N
  --model-cache DIR         where models fetched from the object store are kept
  --data-root DIR           this host's copy of the data sets: replaces the job's data path prefix
                            (the directory holding the data set is DIR/<its base name>)
  --drain-timeout S         seconds in-flight units may run after SIGTERM (default: the ack wait)
  --max-failures-in-a-row N stop pulling after N distinct units failed here with no success between
                            (a misconfigured worker leaves the units to others; default 3, 0: never)

Exit status: 0 drained (signal); 2 it stopped itself after --max-failures-in-a-row; 1 an error.
${NATS_HELP}`;

async function workerCommand(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(WORKER_HELP + '\n');
    return 0;
  }
  const { values: f } = parseArgs({ args, options: WORKER_FLAGS, allowPositionals: false, strict: true });
  const dataRoot = f['data-root'];
  const backend = (f.backend ?? process.env.PATCHCERT_BACKEND ?? 'auto') as 'auto' | BackendName;
  const threads = posInt('threads', f.threads);
  const prepThreads = posInt('prep-threads', f['prep-threads']);
  const factory = createExecutorFactory({
    backend,
    ...(threads !== undefined ? { threads } : {}),
    ...(prepThreads !== undefined ? { prepThreads } : {}),
    ...(dataRoot
      ? {
          resolveDataset: (spec: DatasetSpec): DatasetSpec => {
            const base = spec.path.replace(/\/+$/, '').split('/').pop()!;
            return { ...spec, path: `${dataRoot.replace(/\/+$/, '')}/${base}` };
          },
        }
      : {}),
    onBackend: (b) => {
      if (f.quiet) return;
      process.stderr.write(`backend: ${b.name} (${b.device})\n`);
      for (const s of b.skipped) process.stderr.write(`  skipped ${s.name}: ${s.reason}\n`);
    },
  });
  try {
    const stats = await runWorker({
      ...natsOptionsFromFlags(f),
      executorFactory: factory,
      concurrency: posInt('concurrency', f.concurrency) ?? 2,
      ...(f['worker-id'] ? { workerId: f['worker-id'] } : {}),
      ...(f['model-cache'] ? { modelCacheDir: f['model-cache'] } : {}),
      ...(seconds('drain-timeout', f['drain-timeout']) !== undefined ? { drainTimeoutMs: seconds('drain-timeout', f['drain-timeout'])! } : {}),
      ...(posInt('max-failures-in-a-row', f['max-failures-in-a-row']) !== undefined ? { maxFailuresInARow: posInt('max-failures-in-a-row', f['max-failures-in-a-row'])! } : {}),
      ...(f.quiet ? { log: () => {} } : {}),
    });
    if (!f.quiet) process.stderr.write(`worker ${stats.workerId}: ${stats.unitsDone} units done, ${stats.unitsFailed} reported failed, ${stats.unitsReleased} released\n`);
    if (stats.stoppedReason) {
      // said even with --quiet: an operator must know why this worker left the pool
      process.stderr.write(`worker ${stats.workerId} stopped: ${stats.stoppedReason}\n`);
      return 2;
    }
    return 0;
  } finally {
    await factory.close();
  }
}

const STATUS_HELP = `usage: patchcert status JOB [--json] [NATS options]

Prints a distributed job's state, progress, failed units and alarms (exit 1 when there is no such job).
${NATS_HELP}`;
const CANCEL_HELP = `usage: patchcert cancel JOB [--reason TEXT] [NATS options]

Marks the job cancelled, stops its coordinator and workers, and drops its queued units and results.
${NATS_HELP}`;
const JOBS_HELP = `usage: patchcert jobs [--json] [NATS options]

Lists the jobs in the PATCHCERT_JOBS bucket, most recently updated first.
${NATS_HELP}`;

const wantsHelp = (args: string[], text: string): boolean => {
  if (!args.includes('--help') && !args.includes('-h')) return false;
  process.stdout.write(text + '\n');
  return true;
};

async function jobsCommand(args: string[]): Promise<number> {
  if (wantsHelp(args, JOBS_HELP)) return 0;
  const { values: f } = parseArgs({ args, options: { ...NATS_FLAGS, json: { type: 'boolean' } }, allowPositionals: false, strict: true });
  const jobs = await listJobs(natsOptionsFromFlags(f));
  process.stdout.write((f.json ? JSON.stringify(jobs, null, 2) : formatJobList(jobs)) + '\n');
  return 0;
}

async function statusCommand(args: string[]): Promise<number> {
  if (wantsHelp(args, STATUS_HELP)) return 0;
  const { values: f, positionals } = parseArgs({ args, options: { ...NATS_FLAGS, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
  const id = positionals[0];
  if (!id) throw new Error('usage: patchcert status JOB [--json] [--nats URL]');
  const s = await jobStatus(id, natsOptionsFromFlags(f));
  if (f.json) {
    process.stdout.write(JSON.stringify({ jobId: s.jobId, exists: s.exists, state: s.state, spec: s.spec?.job, unitsTotal: s.spec?.meta.unitsTotal }, null, 2) + '\n');
  } else {
    process.stdout.write(formatStatus(s) + '\n');
  }
  return s.exists ? 0 : 1;
}

async function cancelCommand(args: string[]): Promise<number> {
  if (wantsHelp(args, CANCEL_HELP)) return 0;
  const { values: f, positionals } = parseArgs({ args, options: { ...NATS_FLAGS, reason: { type: 'string' } }, allowPositionals: true, strict: true });
  const id = positionals[0];
  if (!id) throw new Error('usage: patchcert cancel JOB [--reason TEXT] [--nats URL]');
  const st = await cancelJob(id, { ...natsOptionsFromFlags(f), ...(f.reason ? { reason: f.reason } : {}) });
  process.stdout.write(`job ${id}: ${st.state}${st.reason ? ` (${st.reason})` : ''}\n`);
  if (st.purged === false) process.stdout.write(`its queued units and results are left for its coordinator to drop (this role may not purge streams)\n`);
  return 0;
}

export const DISTRIBUTED_COMMANDS: Record<string, DistributedCommand> = {
  coordinator: { summary: 'run a certify job on a NATS JetStream cluster of workers (--help)', run: coordinatorCommand },
  worker: { summary: 'serve units of distributed jobs from NATS JetStream (--help)', run: workerCommand },
  status: { summary: 'status JOB: progress and state of a distributed job', run: statusCommand },
  cancel: { summary: 'cancel JOB: stop a distributed job and drop its queued units', run: cancelCommand },
  jobs: { summary: 'list the distributed jobs on the cluster', run: jobsCommand },
};
