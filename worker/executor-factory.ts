// The real ExecutorFactory: for each job, load the pinned model, index the pinned data set and
// build a TileExecutor. Refuses a job whose model or data set does not match its hashes.
import type { JobSpec } from '../core/index.js';
import { createBackend } from './backends/index.js';
import { indexDataset } from './datasets/index.js';
import { PreprocessPool, TileExecutor } from './executor.js';
import { loadModel } from './model.js';
import type { BackendName, DatasetSpec, GpuOptions, InferenceBackend } from './types.js';
import type { ExecutorFactory, UnitExecutor } from './unit-types.js';

export interface ExecutorFactoryOptions {
  /** backend to use ('auto' by default); the job's model format must be one it runs */
  backend?: 'auto' | BackendName;
  threads?: number;
  prepThreads?: number;
  /** GPU backends' options (also from PATCHCERT_* environment variables; see worker/backends/ort-gpu.ts) */
  gpu?: GpuOptions;
  /** one backend call at a time per job (default true; see TileExecutorOptions) */
  serializeInference?: boolean;
  /** maps a job to a local model manifest path (e.g. fetched from the object store); default job.model.ref */
  resolveModel?: (job: JobSpec) => Promise<string>;
  /** maps the job's data set spec to this host's copy (e.g. another mount point) */
  resolveDataset?: (spec: DatasetSpec) => DatasetSpec;
  /** told which backend was taken for a job, and why others were skipped */
  onBackend?: (info: { name: string; device: string; skipped: { name: string; reason: string }[] }) => void;
}

/** An executor factory plus the pool it shares between jobs; close() frees both. */
export function createExecutorFactory(opts: ExecutorFactoryOptions = {}): ExecutorFactory & { close(): Promise<void> } {
  let pool: PreprocessPool | undefined;
  const backends = new Set<InferenceBackend>();
  const factory = async (job: JobSpec): Promise<UnitExecutor> => {
    const path = opts.resolveModel ? await opts.resolveModel(job) : job.model.ref;
    const model = await loadModel(path, { formats: [job.model.format] });
    const entry = model.manifest.formats[job.model.format];
    if (!entry || entry.sha256 !== job.model.sha256) {
      throw new Error(`model at ${path} has ${job.model.format} sha256 ${entry?.sha256 ?? 'none'}, job ${job.jobId} pins ${job.model.sha256}: refusing`);
    }
    const spec = opts.resolveDataset ? opts.resolveDataset(job.dataset.spec as unknown as DatasetSpec) : (job.dataset.spec as unknown as DatasetSpec);
    const dataset = await indexDataset(spec, job.geometry);
    if (dataset.manifestSha256 !== job.dataset.manifestSha256) {
      throw new Error(`data set at ${spec.path} indexes to ${dataset.manifestSha256}, job ${job.jobId} pins ${job.dataset.manifestSha256}: refusing`);
    }
    const { backend, skipped } = await createBackend(model, opts.backend ?? 'auto', {
      threads: opts.threads,
      ...(opts.gpu ? { gpu: opts.gpu } : {}),
      format: job.model.format,
      expectSha256: job.model.sha256,
    });
    if (backend.modelSha256 !== job.model.sha256) {
      await backend.dispose();
      throw new Error(`backend loaded model ${backend.modelSha256}, job ${job.jobId} pins ${job.model.sha256}: refusing`);
    }
    opts.onBackend?.({ name: backend.name, device: backend.device, skipped });
    backends.add(backend);
    pool ??= new PreprocessPool(opts.prepThreads);
    const executor = new TileExecutor({
      job,
      dataset: spec,
      items: dataset.items,
      backend,
      normalization: model.manifest.normalization ?? null,
      pool,
      ...(opts.serializeInference !== undefined ? { serializeInference: opts.serializeInference } : {}),
    });
    return {
      backend: executor.backend,
      device: executor.device,
      versions: executor.versions,
      execute: (unit, signal) => executor.execute(unit, signal),
      close: async () => {
        backends.delete(backend);
        await backend.dispose();
      },
    };
  };
  return Object.assign(factory, {
    close: async () => {
      for (const b of backends) await b.dispose();
      backends.clear();
      await pool?.close();
      pool = undefined;
    },
  });
}
