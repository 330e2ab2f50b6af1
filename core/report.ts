// Per-image results and the certified-accuracy tables built from them.
import { certifyCounts } from './certificate.js';

export interface RuleOutcome {
  counts: number[];
  prediction: number;
  abstained: boolean;
  /** largest certified square patch side, 0 if none */
  certified: number;
}

/** One line of images.jsonl. */
export interface ImageRecord {
  /** index of the image in the data set */
  index: number;
  label: number;
  /** file or record the image came from */
  source?: string;
  /** keyed by vote rule label: "argmax" or the threshold as written, e.g. "0.3" */
  results?: Record<string, RuleOutcome>;
  /** set instead of results when the image could not be certified (corrupt file, model error) */
  error?: string;
}

export function imageRecord(
  index: number,
  label: number,
  source: string | undefined,
  ruleLabels: readonly string[],
  countsPerRule: readonly ArrayLike<number>[],
  deltas: readonly number[],
): ImageRecord {
  const results: Record<string, RuleOutcome> = {};
  ruleLabels.forEach((l, r) => {
    const counts = Array.from(countsPerRule[r]!);
    results[l] = { counts, ...certifyCounts(counts, deltas) };
  });
  return source === undefined ? { index, label, results } : { index, label, source, results };
}

export interface RuleSummary {
  rule: string;
  /** images certified (failed images excluded) */
  images: number;
  /** smoothed-classifier accuracy: prediction == label (abstentions predict 0, as in the paper's code) */
  cleanAccuracy: number;
  correct: number;
  /** images on which no ablation voted at all */
  abstained: number;
  /** certifiedAccuracy[m-1]: fraction correct and certified against every m x m patch */
  certifiedAccuracy: number[];
  certifiedCorrect: number[];
}

export function summarizeRule(rule: string, records: readonly ImageRecord[], maxPatch: number): RuleSummary {
  let images = 0;
  let correct = 0;
  let abstained = 0;
  const certifiedCorrect = new Array<number>(maxPatch).fill(0);
  for (const rec of records) {
    const o = rec.results?.[rule];
    if (!o) continue;
    images++;
    if (o.abstained) abstained++;
    if (o.prediction !== rec.label) continue;
    correct++;
    for (let m = 1; m <= Math.min(o.certified, maxPatch); m++) certifiedCorrect[m - 1]!++;
  }
  const frac = (x: number) => (images === 0 ? 0 : x / images);
  return {
    rule,
    images,
    cleanAccuracy: frac(correct),
    correct,
    abstained,
    certifiedAccuracy: certifiedCorrect.map(frac),
    certifiedCorrect,
  };
}

/** certified.csv: one row per patch size, one column per rule. */
export function certifiedCsv(summaries: readonly RuleSummary[]): string {
  const maxPatch = summaries[0]?.certifiedAccuracy.length ?? 0;
  const lines = [['patch_size', ...summaries.map((s) => `certified_acc@${s.rule}`)].join(',')];
  lines.push(['0', ...summaries.map((s) => s.cleanAccuracy.toFixed(6))].join(','));
  for (let m = 1; m <= maxPatch; m++) {
    lines.push([String(m), ...summaries.map((s) => s.certifiedAccuracy[m - 1]!.toFixed(6))].join(','));
  }
  return lines.join('\n') + '\n';
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** SVG line plot of certified accuracy against patch side (patch 0 = clean accuracy). */
export function certifiedSvg(summaries: readonly RuleSummary[], title: string): string {
  const W = 640, H = 400, L = 60, R = 150, T = 40, B = 50;
  const maxPatch = Math.max(1, summaries[0]?.certifiedAccuracy.length ?? 1);
  const x = (m: number) => L + (m / maxPatch) * (W - L - R);
  const y = (a: number) => T + (1 - a) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(title)}</text>`);
  for (let t = 0; t <= 10; t += 2) {
    const a = t / 10;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(a)}" y2="${y(a)}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${y(a) + 4}" text-anchor="end">${(a * 100).toFixed(0)}%</text>`);
  }
  const step = Math.max(1, Math.ceil(maxPatch / 12));
  for (let m = 0; m <= maxPatch; m += step) {
    parts.push(`<text x="${x(m)}" y="${H - B + 16}" text-anchor="middle">${m}</text>`);
  }
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(0)}" y2="${y(0)}" stroke="black"/>`);
  parts.push(`<line x1="${L}" x2="${L}" y1="${y(0)}" y2="${y(1)}" stroke="black"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">patch side (pixels); 0 = clean accuracy of the smoothed classifier</text>`);
  parts.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">certified accuracy</text>`);
  summaries.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = [s.cleanAccuracy, ...s.certifiedAccuracy].map((a, m) => `${x(m).toFixed(1)},${y(a).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts}"/>`);
    parts.push(`<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${T + 10 + i * 18}" y2="${T + 10 + i * 18}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${W - R + 38}" y="${T + 14 + i * 18}">${esc(s.rule === 'argmax' ? 'argmax' : `θ = ${s.rule}`)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
