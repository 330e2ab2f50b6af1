// Single-node certification: the same units, executor and outputs as a distributed job, run in
// one process. Finished units are appended to a log in the output folder so a rerun resumes.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type JobSpec,
  type PartialVotes,
  VoteAccumulator,
  jobAblations,
  parseUnitId,
  planUnits,
} from '../core/index.js';
import { createExecutorFactory } from '../worker/executor-factory.js';
import type { ImageFailure, RunInfo, UnitExecutor, UnitResult } from '../worker/unit-types.js';
import { type JobOptions, prepareJob } from './prepare-job.js';
import { type FailedUnit, type WrittenOutputs, writeJobOutputs } from '../outputs/job-outputs.js';
import { claimOutputFolder } from '../outputs/out-folder.js';

export interface CertifyProgress {
  unitsDone: number;
  unitsTotal: number;
  imagesDone: number;
  /** images completed per second in this run */
  imagesPerSecond: number;
  images: number;
  ablationsPerSecond: number;
  etaSeconds: number;
  resumedUnits: number;
}

export interface CertifyOptions extends JobOptions {
  out: string;
  threads?: number;
  prepThreads?: number;
  /** images per unit (one line in the resume log); default 8 tiles' worth */
  unitImages?: number;
  /** ignore an existing log in `out` and start over */
  fresh?: boolean;
  onProgress?: (p: CertifyProgress) => void;
  /** told which backend `auto` picked, and why others were skipped */
  onBackend?: (info: { name: string; device: string; skipped: { name: string; reason: string }[] }) => void;
  /** every unit's result as it completes (timings for benchmarks and profiles) */
  onUnitResult?: (r: UnitResult) => void;
  /** one backend call at a time (default true) */
  serializeInference?: boolean;
  /** units executed at once (default 1: measured faster than 2, whose prefetches compete for the pool; bench/worker-efficiency) */
  unitsInFlight?: number;
}

export interface CertifyResult extends WrittenOutputs {
  job: JobSpec;
}

interface LogLine {
  unit: string;
  counts: number[][];
  failures: ImageFailure[];
  run: RunInfo;
}

export function unitResultToPartial(r: Pick<UnitResult, 'unit' | 'counts'>): PartialVotes {
  return { ...r.unit, counts: r.counts };
}

async function readLog(path: string): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return lines;
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const l = JSON.parse(line) as LogLine;
      parseUnitId(l.unit);
      lines.push(l);
    } catch {
      // A line cut short by a crash: that unit is simply run again.
    }
  }
  return lines;
}

export async function certifyLocal(opts: CertifyOptions): Promise<CertifyResult> {
  const t0 = performance.now();
  const prepared = await prepareJob(opts);
  const { job, dataset } = prepared;
  const claimed = await claimOutputFolder(opts.out, job, opts.fresh ?? false);
  const logPath = join(opts.out, 'units.log.jsonl');
  if (!claimed.resumed) await writeFile(logPath, '');

  const K = jobAblations(job);
  const N = job.dataset.images;
  const acc = new VoteAccumulator(N, K, job.numClasses, job.rules.length);
  const failures = new Map<number, ImageFailure>();
  const runs: RunInfo[] = [];
  for (const l of await readLog(logPath)) {
    const r = parseUnitId(l.unit);
    acc.merge({ ...r, counts: l.counts.map((c) => Int32Array.from(c)) });
    for (const f of l.failures) failures.set(f.position, f);
    runs.push(l.run);
  }
  const resumedUnits = acc.mergedUnits;
  const resumedImages = Array.from({ length: N }, (_, i) => i).filter((i) => acc.isImageComplete(i)).length;
  let imagesDone = resumedImages;

  const unitImages = opts.unitImages ?? job.tile.images * 8;
  const units = planUnits(N, K, job.tile, { images: unitImages, ablations: K }).filter((u) => !acc.has(u.id));
  const unitsTotal = units.length + resumedUnits;

  let ablationsRun = 0;
  const failedUnits: FailedUnit[] = [];
  if (units.length > 0) {
    const factory = createExecutorFactory({
      backend: (opts.backend ?? 'auto') as 'auto',
      threads: opts.threads,
      prepThreads: opts.prepThreads,
      ...(opts.serializeInference !== undefined ? { serializeInference: opts.serializeInference } : {}),
      onBackend: opts.onBackend,
    });
    let executor: UnitExecutor;
    try {
      executor = await factory(job);
    } catch (err) {
      await factory.close();
      throw err;
    }
    runs.push({ backend: executor.backend, device: executor.device, versions: executor.versions });
    const tRun = performance.now();
    let done = 0;
    const report = () => {
      const secs = (performance.now() - tRun) / 1000;
      const rate = secs > 0 ? ablationsRun / secs : 0;
      const remaining = units.slice(done).reduce((s, u) => s + (u.imgEnd - u.imgStart) * (u.ablEnd - u.ablStart), 0);
      opts.onProgress?.({
        unitsDone: resumedUnits + done,
        unitsTotal,
        imagesDone,
        imagesPerSecond: secs > 0 ? (imagesDone - resumedImages) / secs : 0,
        images: N,
        ablationsPerSecond: rate,
        etaSeconds: rate > 0 ? remaining / rate : Infinity,
        resumedUnits,
      });
    };
    try {
      // Units run one at a time by default (unitsInFlight); results merge in any order.
      const inflight = new Set<Promise<void>>();
      for (const u of units) {
        const p = (async () => {
          let res: UnitResult;
          try {
            res = await executor.execute(u);
          } catch (err) {
            // Reported by unit id; the rest of the job goes on (a rerun retries it).
            failedUnits.push({ unitId: u.id, error: err instanceof Error ? err.message : String(err), attempts: 1 });
            return;
          }
          acc.merge(unitResultToPartial(res));
          opts.onUnitResult?.(res);
          for (let i = u.imgStart; i < u.imgEnd; i++) if (acc.isImageComplete(i)) imagesDone++;
          for (const f of res.failures) failures.set(f.position, f);
          const line: LogLine = {
            unit: u.id,
            counts: res.counts.map((c) => Array.from(c)),
            failures: res.failures,
            run: { backend: res.backend, device: res.device, versions: res.versions },
          };
          await appendFile(logPath, JSON.stringify(line) + '\n');
          ablationsRun += (u.imgEnd - u.imgStart) * (u.ablEnd - u.ablStart);
          done++;
          report();
        })();
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= Math.max(1, opts.unitsInFlight ?? 1)) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    } finally {
      await executor.close();
      await factory.close();
    }
  }

  const written = await writeJobOutputs(opts.out, job, acc, dataset.items, [...failures.values()].sort((a, b) => a.position - b.position), failedUnits, {
    wallSeconds: (performance.now() - t0) / 1000,
    ablationsRun,
    resumedImages,
    runs,
  });
  return { ...written, job };
}
