// What a worker does with one work unit, independent of how the unit reached it
// (single-node loop or NATS JetStream).
import type { ImageFailure, JobSpec, RunInfo, UnitRange } from '../core/index.js';

export type { ImageFailure, RunInfo } from '../core/index.js';

export interface UnitResult extends RunInfo {
  unit: UnitRange;
  /** per vote rule, (imgEnd - imgStart) x numClasses counts; a failed image's row stays zero */
  counts: Int32Array[];
  failures: ImageFailure[];
  /** milliseconds spent waiting for preprocessing, in backend calls, and in all */
  preprocessMs: number;
  inferenceMs: number;
  totalMs: number;
}

export interface UnitExecutor extends RunInfo {
  execute(unit: UnitRange, signal?: AbortSignal): Promise<UnitResult>;
  close(): Promise<void>;
}

export type ExecutorFactory = (job: JobSpec) => Promise<UnitExecutor>;
