// The compute side of a work unit: tiles → piscina preprocessing → backend → vote counts.
// Preprocessing of the next tiles runs in pool threads while the backend works on the current one.
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import {
  type EncodeSpec,
  type JobSpec,
  type UnitRange,
  addVotes,
  isTileAligned,
  jobAblations,
  keptPositions,
  tilesOf,
  unitId,
} from '../core/index.js';
import { stageAblations } from './backends/onnx-graph-ablate.js';
import type { PreprocessResult, PreprocessTask } from './preprocess-task.js';
import type { DatasetItem, DatasetSpec, InferenceBackend } from './types.js';
import type { ImageFailure, UnitExecutor, UnitResult } from './unit-types.js';

export interface TileExecutorOptions {
  job: JobSpec;
  dataset: DatasetSpec;
  /** the job's image list, by position */
  items: readonly DatasetItem[];
  backend: InferenceBackend;
  normalization?: { mean: number[]; std: number[] } | null;
  pool: PreprocessPool;
  /** tiles prepared ahead of the one being inferred (default 2 per pool thread) */
  lookahead?: number;
  /** one backend.run at a time across the units this executor runs at once (default true): the
   * backend's own threads do the parallel work, and concurrent calls only oversubscribe the cores */
  serializeInference?: boolean;
}

/** A piscina pool running worker/preprocess-task.js. */
export class PreprocessPool {
  readonly piscina: Piscina<PreprocessTask, PreprocessResult>;
  constructor(readonly threads: number = Math.max(1, availableParallelism() - 1)) {
    this.piscina = new Piscina({
      filename: new URL('./preprocess-task.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }
  run(task: PreprocessTask): Promise<PreprocessResult> {
    return this.piscina.run(task);
  }
  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}

export class TileExecutor implements UnitExecutor {
  readonly backend: string;
  readonly device: string;
  readonly versions: Record<string, string>;
  private readonly encode: EncodeSpec;
  private readonly ablations: number;
  /** the backend builds ablations on the device from decoded images (host sends O(image)) */
  private readonly deviceAblation: boolean;
  /** tail of the chain of backend calls when inference is serialized */
  private inferenceTail: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: TileExecutorOptions) {
    const { job, backend } = opts;
    this.backend = backend.name;
    this.device = backend.device;
    this.versions = backend.versions;
    this.ablations = jobAblations(job);
    if (opts.items.length !== job.dataset.images) {
      throw new Error(`data set has ${opts.items.length} images but job ${job.jobId} expects ${job.dataset.images}`);
    }
    if (backend.numClasses !== job.numClasses) {
      throw new Error(`model has ${backend.numClasses} classes but job ${job.jobId} expects ${job.numClasses}`);
    }
    const norm = opts.normalization ?? undefined;
    this.encode = {
      scheme: job.scheme,
      geom: { height: job.geometry.height, width: job.geometry.width },
      channels: job.geometry.channels,
      encoding: job.encoding,
      layout: backend.layout,
      ...(backend.inputView === 'kept' ? { view: 'kept' as const } : {}),
      ...(norm ? { mean: norm.mean, std: norm.std } : {}),
    };
    this.deviceAblation = typeof backend.runAblations === 'function' && this.encode.view !== 'kept';
  }

  async execute(unit: UnitRange, signal?: AbortSignal): Promise<UnitResult> {
    const { job, items, backend, pool } = this.opts;
    const t0 = performance.now();
    const total = job.dataset.images;
    if (!isTileAligned(unit, job.tile, total, this.ablations)) {
      throw new Error(`unit ${unitId(unit)} is not aligned to the job's tile grid (${job.tile.images} images x ${job.tile.ablations} ablations)`);
    }
    const n = unit.imgEnd - unit.imgStart;
    const C = job.numClasses;
    const counts = job.rules.map(() => new Int32Array(n * C));
    const failures = new Map<number, ImageFailure>();
    const tiles = tilesOf(unit, job.tile, total, this.ablations);
    const lookahead = this.opts.lookahead ?? Math.max(2, 2 * pool.threads);
    const pending: Promise<PreprocessResult>[] = [];
    let next = 0;
    const submit = () => {
      while (next < tiles.length && pending.length < lookahead) {
        const t = tiles[next++]!;
        const p = pool.run({
          dataset: this.opts.dataset,
          encode: this.encode,
          items: items.slice(t.imgStart, t.imgEnd),
          ablStart: t.ablStart,
          ablEnd: t.ablEnd,
          ...(this.deviceAblation ? { decodeOnly: true } : {}),
        });
        p.catch(() => undefined); // awaited in order below; avoid an unhandled rejection meanwhile
        pending.push(p);
      }
    };
    let preprocessMs = 0;
    let inferenceMs = 0;
    let previous: { logits: Float32Array; owner: Int32Array } | undefined;
    try {
      for (const tile of tiles) {
        if (signal?.aborted) throw new Error(`unit ${unitId(unit)} aborted`);
        submit();
        const w0 = performance.now();
        const prep = await pending.shift()!;
        preprocessMs += performance.now() - w0;
        submit();
        const span = tile.ablEnd - tile.ablStart;
        const rows = (tile.imgEnd - tile.imgStart) * span;
        const failedRows = new Set(prep.failed.map((f) => f.item));
        for (const f of prep.failed) {
          const position = tile.imgStart + f.item;
          if (!failures.has(position)) {
            const item = items[position]!;
            failures.set(position, { position, index: item.index, source: item.source, error: f.error });
          }
        }
        const owner = new Int32Array(rows);
        for (let r = 0; r < rows; r++) {
          const img = Math.floor(r / span);
          owner[r] = failedRows.has(img) ? -1 : tile.imgStart + img - unit.imgStart;
        }
        // Start this tile's inference, then count the previous tile's votes while it runs.
        const positions = this.encode.view === 'kept'
          ? keptPositions(job.scheme, this.encode.geom, tile.ablStart, tile.ablEnd, tile.imgEnd - tile.imgStart)
          : undefined;
        const running = this.deviceAblation
          ? this.infer(prep.input, rows, undefined, { images: tile.imgEnd - tile.imgStart, ablations: stageAblations(job.scheme, this.encode.geom, tile.ablStart, tile.ablEnd) })
          : this.infer(prep.input, rows, positions);
        running.catch(() => undefined); // awaited just below
        if (previous) addVotes(previous.logits, C, previous.owner, job.rules, counts);
        previous = undefined;
        try {
          const r = await running;
          previous = { logits: r.logits, owner };
          inferenceMs += r.ms;
        } catch (err) {
          throw new Error(`backend ${backend.name} failed on unit ${unitId(unit)} tile ${unitId(tile)}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (previous) addVotes(previous.logits, C, previous.owner, job.rules, counts);
    } finally {
      // Drain prefetched tasks of an aborted unit so the pool is free for the next one.
      await Promise.allSettled(pending);
    }
    // A failed image contributes nothing; zero its rows in case of a partial tile.
    for (const pos of failures.keys()) for (const c of counts) c.fill(0, (pos - unit.imgStart) * C, (pos - unit.imgStart + 1) * C);
    return {
      unit: { imgStart: unit.imgStart, imgEnd: unit.imgEnd, ablStart: unit.ablStart, ablEnd: unit.ablEnd },
      counts,
      failures: [...failures.values()].sort((a, b) => a.position - b.position),
      backend: this.backend,
      device: this.device,
      versions: this.versions,
      preprocessMs,
      inferenceMs,
      totalMs: performance.now() - t0,
    };
  }

  /** backend.run, timed (ms excludes the wait for another unit's call when serialized) */
  private infer(
    input: Float32Array,
    rows: number,
    positions?: Float32Array,
    device?: { images: number; ablations: Float32Array },
  ): Promise<{ logits: Float32Array; ms: number }> {
    const { backend } = this.opts;
    const timed = async () => {
      const t = performance.now();
      const logits = device ? await backend.runAblations!(input, device.images, device.ablations) : await backend.run(input, rows, positions);
      return { logits, ms: performance.now() - t };
    };
    if (this.opts.serializeInference === false) return timed();
    const run = this.inferenceTail.then(timed);
    this.inferenceTail = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    // The pool and backend are owned by whoever created them (they outlive one job's executor).
  }
}
