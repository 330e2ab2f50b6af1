// patchcert's programmatic API: the same options and names as the CLI, usable without it.
export * from './core/index.js';
// single node: prepare a job, certify it in this process, write its outputs
export { certifyLocal, type CertifyOptions, type CertifyProgress, type CertifyResult } from './pipeline/certify-local.js';
export { prepareJob, type JobOptions, type PreparedJob } from './pipeline/prepare-job.js';
export { writeJobOutputs, formatSummary, type JobSummary } from './outputs/job-outputs.js';
// distributed: the coordinator, the worker and the job operations they share over NATS
export { runCoordinator, type CoordinatorOptions, type CoordinatorResult } from './coordinator/coordinator.js';
export { runWorker, type WorkerOptions, type WorkerStats } from './worker/nats-worker.js';
export { createExecutorFactory } from './worker/executor-factory.js';
export { cancelJob, jobStatus, formatStatus, type JobStatus, type JobStateRecord } from './cluster/jobs.js';
export { connectNats, type NatsConnectOptions } from './cluster/connect.js';
// the pieces of a worker
export { TileExecutor, PreprocessPool } from './worker/executor.js';
export { createBackend } from './worker/backends/index.js';
export { loadModel } from './worker/model.js';
export { indexDataset, createImageReader } from './worker/datasets/index.js';
export type * from './worker/types.js';
export type * from './worker/unit-types.js';
