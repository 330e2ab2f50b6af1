// patchcert's programmatic API: the same options and names as the CLI.
export * from './core/index.js';
export { certifyLocal, type CertifyOptions, type CertifyProgress, type CertifyResult } from './coordinator/certify-local.js';
export { prepareJob, type JobOptions, type PreparedJob } from './coordinator/prepare-job.js';
export { writeJobOutputs, formatSummary, type JobSummary } from './coordinator/outputs.js';
export { TileExecutor, PreprocessPool } from './worker/executor.js';
export { createBackend } from './worker/backends/index.js';
export { loadModel } from './worker/model.js';
export { indexDataset, createImageReader } from './worker/datasets/index.js';
export type * from './worker/types.js';
export type * from './worker/unit-types.js';
