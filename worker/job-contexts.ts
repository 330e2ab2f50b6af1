// The jobs a NATS worker knows: each job's spec (read from the PATCHCERT_JOBS bucket once), whether
// it was cancelled, and its executor, built on first use with the model from the job's shared path
// or fetched from the PATCHCERT_MODELS object store. One job's model at a time stays in memory.
import { existsSync } from 'node:fs';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { JobSpec } from '../core/index.js';
import { readJob, readState } from '../cluster/jobs.js';
import { fetchModel, manifestPathOf } from '../cluster/model-store.js';
import type { ExecutorFactory, UnitExecutor } from './unit-types.js';

/** A failure that may pass (network, server restart): the unit is released, not reported. */
export class TransientError extends Error {}

export interface JobContext {
  job: JobSpec;
  cancelled: boolean;
  /** the executor, or the reason this worker cannot run the job */
  executor?: Promise<UnitExecutor>;
  inFlight: number;
}

const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class JobContexts {
  private readonly jobs = new Map<string, JobContext>();
  /** backend and device of the last executor built, for the heartbeat */
  lastBackend = '';
  lastDevice = '';

  constructor(
    private readonly nc: NatsConnection,
    /** undefined when the worker stopped before the bucket could be opened */
    private readonly kv: KV | undefined,
    private readonly executorFactory: ExecutorFactory,
    private readonly cacheDir: string,
    private readonly log: (s: string) => void,
  ) {}

  /** The job's context if this worker has read it already. */
  peek(jobId: string): JobContext | undefined {
    return this.jobs.get(jobId);
  }

  /** The job's context, reading its spec on first use; undefined when the bucket holds no spec. */
  async get(jobId: string): Promise<JobContext | undefined> {
    let ctx = this.jobs.get(jobId);
    if (ctx) return ctx;
    if (!this.kv) return undefined;
    const stored = await readJob(this.kv, jobId);
    if (!stored) return undefined;
    const st = await readState(this.kv, jobId);
    ctx = this.jobs.get(jobId); // raced with another slot
    if (ctx) return ctx;
    ctx = { job: stored.job, cancelled: st?.state.state === 'cancelled', inFlight: 0 };
    this.jobs.set(jobId, ctx);
    await this.retireOthers(jobId);
    return ctx;
  }

  /** Builds the job's executor; a model that cannot be fetched just now is a TransientError. */
  async buildExecutor(job: JobSpec): Promise<UnitExecutor> {
    let local = job;
    if (!existsSync(manifestPathOf(job.model.ref))) {
      let fetched: string | undefined;
      try {
        fetched = await fetchModel(this.nc, job.model.sha256, this.cacheDir);
      } catch (e) {
        throw new TransientError(`fetching model ${job.model.sha256} from the object store: ${errText(e)}`);
      }
      if (!fetched) throw new Error(`model ${job.model.sha256} is neither at ${job.model.ref} nor in the PATCHCERT_MODELS object store`);
      this.log(`fetched model ${job.model.sha256.slice(0, 12)}… from the object store to ${fetched}`);
      local = { ...job, model: { ...job.model, ref: fetched } };
    }
    const ex = await this.executorFactory(local);
    this.lastBackend = ex.backend;
    this.lastDevice = ex.device;
    return ex;
  }

  /** Closes the executors of jobs with nothing in flight (one job's model at a time in memory). */
  private async retireOthers(keep: string): Promise<void> {
    for (const [id, ctx] of this.jobs) {
      if (id === keep || ctx.inFlight > 0) continue;
      this.jobs.delete(id);
      if (ctx.executor) await ctx.executor.then((e) => e.close()).catch(() => {});
    }
  }

  async closeAll(): Promise<void> {
    for (const ctx of this.jobs.values()) if (ctx.executor) await ctx.executor.then((e) => e.close()).catch(() => {});
  }
}
