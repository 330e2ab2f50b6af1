// Band-native against dense base classifiers, in one run on one machine (issue 14): certify
// ablations/s of patchcert on the dense model and on the band-native (kept-view) model, and of the
// plain PyTorch loop (bench/reference_loop.py, the authors' shape) on each, on the same images and
// thread count, one after the other; plus each model's smoothed figures on those images and the
// agreement of patchcert's counts with the PyTorch loop's.
//
//   node dist/bench/band-vs-dense.js --dense models/cifar10-column4 --band models/cifar10-column4-band \
//        --data data/cifar10/test [--limit 500] [--threads 2] [--theta 0.3] [--skip-reference]
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    dense: { type: 'string' },
    band: { type: 'string' },
    data: { type: 'string' },
    format: { type: 'string', default: 'imagefolder' },
    limit: { type: 'string', default: '500' },
    threads: { type: 'string', default: '2' },
    theta: { type: 'string', default: '0.3' },
    batch: { type: 'string', default: '100' },
    python: { type: 'string', default: '/usr/bin/python3' },
    'skip-reference': { type: 'boolean', default: false },
  },
});
if (!values.dense || !values.band || !values.data) {
  console.error('usage: node dist/bench/band-vs-dense.js --dense DIR --band DIR --data PATH [--limit N] [--threads T]');
  process.exit(1);
}
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = await mkdtemp(join(tmpdir(), 'patchcert-band-'));

interface Rec { index: number; label: number; results: Record<string, { counts: number[]; prediction: number; certified: number }> }
interface Row { name: string; images: number; passes: number; wall: number; clean: number; cert5: number; recs: Rec[] }

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) {
    process.stderr.write((r.stdout ?? '') + (r.stderr ?? ''));
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  }
  return r.stdout;
}

function smoothed(recs: Rec[], rule: string): { clean: number; cert5: number } {
  const ok = recs.filter((r) => r.results[rule]!.prediction === r.label);
  return { clean: ok.length / recs.length, cert5: ok.filter((r) => r.results[rule]!.certified >= 5).length / recs.length };
}

async function patchcert(name: string, model: string, tag: string): Promise<Row> {
  const out = join(work, tag);
  run(process.execPath, [join(root, 'bin/patchcert.js'), 'certify', '--model', resolve(model), '--data', resolve(values.data!),
    '--format', values.format!, '--limit', values.limit!, '--thresholds', values.theta!, '--backend', 'onnx', '--threads', values.threads!,
    '--max-patch', '5', '--out', out, '--fresh', '--quiet']);
  const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8'));
  const recs: Rec[] = (await readFile(join(out, 'images.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { name, images: summary.images, passes: summary.run.ablationsRun, wall: summary.run.wallSeconds, ...smoothed(recs, values.theta!), recs };
}

async function reference(name: string, model: string, tag: string): Promise<Row> {
  const out = join(work, `${tag}.jsonl`);
  const stdout = run(values.python!, [join(root, 'bench/reference_loop.py'), '--model', resolve(model), '--limit', values.limit!,
    '--thresholds', values.theta!, '--threads', values.threads!, '--batch', values.batch!, '--out', out]);
  const line = stdout.split('\n').find((l) => l.startsWith('timing '));
  if (!line) throw new Error('reference_loop.py printed no timing line');
  const t = JSON.parse(line.slice('timing '.length));
  const recs: Rec[] = (await readFile(out, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { name, images: t.images, passes: t.passes, wall: t.wallSeconds, ...smoothed(recs, values.theta!), recs };
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const rows: Row[] = [];
rows.push(await patchcert(`patchcert, dense ${values.dense}`, values.dense, 'patchcert-dense'));
rows.push(await patchcert(`patchcert, band-native ${values.band}`, values.band, 'patchcert-band'));
if (!values['skip-reference']) {
  rows.push(await reference(`PyTorch loop, dense ${values.dense}`, values.dense, 'reference-dense'));
  rows.push(await reference(`PyTorch loop, band-native ${values.band}`, values.band, 'reference-band'));
}
console.log(`load average after: ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const base = rows[0]!.passes / rows[0]!.wall;
const ref = rows[2] ? rows[2].passes / rows[2].wall : undefined;
console.log(`\n| run (${values.threads} threads) | images | ablations | wall s | ablations/s | vs patchcert dense | vs PyTorch dense | clean (θ=${values.theta}) | certified 5x5 |`);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  const rate = r.passes / r.wall;
  console.log(`| ${r.name} | ${r.images} | ${r.passes} | ${r.wall.toFixed(1)} | ${Math.round(rate)} | ${(rate / base).toFixed(2)}x | ${ref ? `${(rate / ref).toFixed(2)}x` : '–'} | ${(100 * r.clean).toFixed(2)}% | ${(100 * r.cert5).toFixed(2)}% |`);
}
// patchcert vs the PyTorch loop on the same model: counts per image
for (const [a, b] of [[0, 2], [1, 3]] as const) {
  if (!rows[b]) continue;
  const by = new Map(rows[b]!.recs.map((r) => [r.index, r]));
  let same = 0, pred = 0;
  for (const r of rows[a]!.recs) {
    const q = by.get(r.index)?.results[values.theta!];
    const p = r.results[values.theta!]!;
    if (q && q.counts.join() === p.counts.join()) same++;
    // patchcert certifies up to --max-patch 5 here; the loop reports the largest side
    if (q && q.prediction === p.prediction && Math.min(q.certified, 5) === Math.min(p.certified, 5)) pred++;
  }
  console.log(`${rows[a]!.name} vs the PyTorch loop: identical counts on ${same}/${rows[a]!.recs.length} images, identical prediction and certificate on ${pred}`);
}
console.log(`\n(outputs in ${work})`);
