// Final outputs of a job, written the same way by single-node certify and the distributed
// coordinator: the per-image certificates depend on the merged counts only, so they are
// byte-identical whatever produced the counts.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DatasetItem,
  type ImageFailure,
  type ImageRecord,
  type JobSpec,
  type RuleSummary,
  type RunInfo,
  type UnitAlarm,
  type VoteAccumulator,
  certifiedCsv,
  certifiedSvg,
  imageRecord,
  jobAblations,
  jobRuleLabels,
  squareDeltas,
  summarizeRule,
} from '../core/index.js';

export const PRECISION_NOTE =
  'votes: argmax on float32 logits (lowest index on ties); thresholds: float32 softmax (Math.fround after every operation, sum in class order) compared with float32(theta)';

export interface FailedUnit {
  unitId: string;
  error: string;
  attempts: number;
}

export interface JobRunStats {
  wallSeconds: number;
  /** ablations (forward passes) run in this process or cluster during this run */
  ablationsRun: number;
  workers?: number;
  resumedImages?: number;
  runs: RunInfo[];
  /** distributed runs: units on which workers' counts disagreed */
  alarms?: UnitAlarm[];
  /** distributed runs: for each unit, the workers whose (equal) counts it holds */
  unitWorkers?: Record<string, string[]>;
  /** distributed runs: fraction of units computed by two workers, and ablations computed in all */
  replicate?: number;
  ablationsComputed?: number;
}

/** Builds every image's record (in job order); failed images carry their error instead of results. */
export function buildRecords(
  job: JobSpec,
  acc: VoteAccumulator,
  items: readonly DatasetItem[],
  failures: readonly ImageFailure[],
): ImageRecord[] {
  const labels = jobRuleLabels(job);
  const deltas = squareDeltas(job.scheme, job.geometry, job.maxPatch);
  const failed = new Map(failures.map((f) => [f.position, f]));
  const out: ImageRecord[] = [];
  for (let pos = 0; pos < items.length; pos++) {
    const item = items[pos]!;
    const f = failed.get(pos);
    if (f) {
      out.push({ index: item.index, label: item.label, source: item.source, error: f.error });
      continue;
    }
    if (!acc.isImageComplete(pos)) {
      out.push({ index: item.index, label: item.label, source: item.source, error: 'incomplete: not every ablation of this image was counted (see failedUnits)' });
      continue;
    }
    out.push(imageRecord(item.index, item.label, item.source, labels, labels.map((_, r) => acc.imageCounts(r, pos)), deltas));
  }
  return out;
}

/** Accuracy of the base classifier on single ablated inputs, from the argmax counts. */
export function baseAccuracy(job: JobSpec, acc: VoteAccumulator, items: readonly DatasetItem[], failures: readonly ImageFailure[]): number | null {
  const r = job.rules.indexOf('argmax');
  if (r < 0) return null;
  const failed = new Set(failures.map((f) => f.position));
  let correct = 0;
  let total = 0;
  for (let pos = 0; pos < items.length; pos++) {
    if (failed.has(pos) || !acc.isImageComplete(pos)) continue;
    correct += acc.imageCounts(r, pos)[items[pos]!.label]!;
    total += acc.ablations;
  }
  return total === 0 ? null : correct / total;
}

export interface JobSummary {
  job: JobSpec;
  images: number;
  certifiedImages: number;
  failedImages: { index: number; source: string; error: string }[];
  failedUnits: FailedUnit[];
  ablationsPerImage: number;
  precision: string;
  /** smoothed classifier, per vote rule */
  smoothed: RuleSummary[];
  /** base classifier on single ablated images (argmax), for comparison; not the smoothed accuracy */
  baseClassifierAblatedAccuracy: number | null;
  run: {
    backends: RunInfo[];
    wallSeconds: number;
    ablationsRun: number;
    ablationsPerSecond: number;
    workers?: number;
    resumedImages?: number;
    replicate?: number;
    /** forward passes computed in all, counting replicas and recomputations */
    ablationsComputed?: number;
    unitWorkers?: Record<string, string[]>;
  };
  /** units on which workers returned different counts (distributed runs; empty when none) */
  alarms?: UnitAlarm[];
  finishedAt: string;
}

export interface WrittenOutputs {
  summary: JobSummary;
  files: { images: string; summary: string; csv: string; svg: string };
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text);
  await rename(`${path}.tmp`, path);
}

export async function writeJobOutputs(
  outDir: string,
  job: JobSpec,
  acc: VoteAccumulator,
  items: readonly DatasetItem[],
  failures: readonly ImageFailure[],
  failedUnits: readonly FailedUnit[],
  stats: JobRunStats,
): Promise<WrittenOutputs> {
  await mkdir(outDir, { recursive: true });
  const records = buildRecords(job, acc, items, failures);
  const labels = jobRuleLabels(job);
  const smoothed = labels.map((l) => summarizeRule(l, records, job.maxPatch));
  const uniqueRuns = [...new Map(stats.runs.map((r) => [JSON.stringify(r), r])).values()];
  const summary: JobSummary = {
    job,
    images: items.length,
    certifiedImages: records.filter((r) => r.results).length,
    failedImages: records.filter((r) => r.error).map((r) => ({ index: r.index, source: r.source ?? '', error: r.error! })),
    failedUnits: [...failedUnits],
    ablationsPerImage: jobAblations(job),
    precision: PRECISION_NOTE,
    smoothed,
    baseClassifierAblatedAccuracy: baseAccuracy(job, acc, items, failures),
    run: {
      backends: uniqueRuns,
      wallSeconds: stats.wallSeconds,
      ablationsRun: stats.ablationsRun,
      ablationsPerSecond: stats.wallSeconds > 0 ? stats.ablationsRun / stats.wallSeconds : 0,
      ...(stats.workers !== undefined ? { workers: stats.workers } : {}),
      ...(stats.resumedImages !== undefined ? { resumedImages: stats.resumedImages } : {}),
      ...(stats.replicate !== undefined ? { replicate: stats.replicate } : {}),
      ...(stats.ablationsComputed !== undefined ? { ablationsComputed: stats.ablationsComputed } : {}),
      ...(stats.unitWorkers !== undefined ? { unitWorkers: stats.unitWorkers } : {}),
    },
    ...(stats.alarms !== undefined ? { alarms: stats.alarms } : {}),
    finishedAt: new Date().toISOString(),
  };
  const files = {
    images: join(outDir, 'images.jsonl'),
    summary: join(outDir, 'summary.json'),
    csv: join(outDir, 'certified.csv'),
    svg: join(outDir, 'certified.svg'),
  };
  await writeAtomic(files.images, records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
  await writeAtomic(files.csv, certifiedCsv(smoothed));
  await writeAtomic(files.svg, certifiedSvg(smoothed, `${job.model.name}: ${job.scheme.kind} s=${job.scheme.size}, ${items.length} images`));
  await writeAtomic(files.summary, JSON.stringify(summary, null, 2) + '\n');
  return { summary, files };
}

/** Human-readable table of the smoothed classifier's accuracy, for the terminal. */
export function formatSummary(s: JobSummary, sizes?: number[]): string {
  const lines: string[] = [];
  const maxPatch = s.job.maxPatch;
  const show = sizes ?? Array.from({ length: Math.min(maxPatch, 12) }, (_, i) => i + 1);
  lines.push(`images: ${s.images} (${s.certifiedImages} certified, ${s.failedImages.length} failed), ${s.ablationsPerImage} ablations each`);
  if (s.baseClassifierAblatedAccuracy !== null) {
    lines.push(`base classifier on single ablated images: ${(100 * s.baseClassifierAblatedAccuracy).toFixed(2)}%`);
  }
  const head = ['rule', 'clean', ...show.map((m) => `${m}x${m}`), 'abstained'];
  lines.push('smoothed classifier: clean accuracy and certified accuracy against m x m patches');
  lines.push(head.map((h) => h.padStart(10)).join(''));
  for (const r of s.smoothed) {
    const row = [r.rule, `${(100 * r.cleanAccuracy).toFixed(2)}%`, ...show.map((m) => `${(100 * (r.certifiedAccuracy[m - 1] ?? 0)).toFixed(2)}%`), String(r.abstained)];
    lines.push(row.map((c) => c.padStart(10)).join(''));
  }
  lines.push(`wall ${s.run.wallSeconds.toFixed(1)} s, ${s.run.ablationsPerSecond.toFixed(0)} ablations/s on ${s.run.backends.map((b) => `${b.backend} (${b.device})`).join(', ')}`);
  return lines.join('\n');
}
