// patchcert against a plain PyTorch certification loop (issue 5.3), same weights, images and threads.
//
//   node dist/bench/compare-reference.js --model models/fashion-mnist-column2 \
//        --checkpoint training/runs/fmnist-column2/last.pt --data /usr/share/datasets/fashion-mnist \
//        --format idx [--limit 1000] [--thresholds 0.3] [--threads 2] [--batch 100] [--python /usr/bin/python3]
//
// Runs `patchcert certify` (onnx backend) and then bench/reference_loop.py (one network call per
// band position over a batch of images, as the authors' code does) one after the other, and prints
// images, forward passes, wall seconds and passes/s of each, the ratio patchcert/reference, and per
// vote rule how many images agree on the exact counts, the prediction and the certified patch side.
// patchcert's wall is summary.json run.wallSeconds (the job, after start-up); the reference's is its
// certification loop (after loading the model and data). Process wall times are printed too.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    checkpoint: { type: 'string' },
    data: { type: 'string' },
    format: { type: 'string' },
    'py-dataset': { type: 'string' },
    limit: { type: 'string', default: '1000' },
    thresholds: { type: 'string', default: '0.3' },
    threads: { type: 'string', default: '2' },
    batch: { type: 'string', default: '100' },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
if (!values.model || !values.data) {
  console.error('usage: node dist/bench/compare-reference.js --model DIR [--checkpoint last.pt] --data PATH [--format F] [--limit N]\n' +
    '  without --checkpoint the reference rebuilds the network from DIR/model.onnx (float16-stored models)');
  process.exit(1);
}
// dist/bench/compare-reference.js -> repository root
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = await mkdtemp(join(tmpdir(), 'patchcert-ref-'));
const pcOut = join(work, 'patchcert');
const pyOut = join(work, 'reference.jsonl');
const rules = [...values.thresholds.split(',').map((s) => s.trim()).filter((s) => s && s !== 'argmax'), 'argmax'];

interface Row { index: number; results: Record<string, { counts: number[]; prediction: number; certified: number }> }

function run(cmd: string, args: string[]): { stdout: string; seconds: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) {
    process.stderr.write(r.stdout ?? '');
    process.stderr.write(r.stderr ?? '');
    throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
  }
  return { stdout: r.stdout, seconds };
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const pcArgs = [join(root, 'bin/patchcert.js'), 'certify', '--model', resolve(values.model), '--data', resolve(values.data),
  '--limit', values.limit, '--thresholds', values.thresholds, '--backend', 'onnx', '--threads', values.threads,
  '--out', pcOut, '--fresh', '--quiet'];
if (values.format) pcArgs.push('--format', values.format);
const pc = run(process.execPath, pcArgs);
const summary = JSON.parse(await readFile(join(pcOut, 'summary.json'), 'utf8'));
const pcRows: Row[] = (await readFile(join(pcOut, 'images.jsonl'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));

const pyModel = values.checkpoint ? ['--checkpoint', resolve(values.checkpoint)] : ['--model', resolve(values.model)];
const pyArgs = [join(root, 'bench/reference_loop.py'), ...pyModel, '--limit', values.limit,
  '--thresholds', rules.join(','), '--threads', values.threads, '--batch', values.batch, '--out', pyOut];
if (values['py-dataset']) pyArgs.push('--dataset', values['py-dataset']);
const py = run(values.python, pyArgs);
const timingLine = py.stdout.split('\n').find((l) => l.startsWith('timing '));
if (!timingLine) throw new Error('reference_loop.py printed no timing line');
const timing = JSON.parse(timingLine.slice('timing '.length));
const pyRows: Row[] = (await readFile(pyOut, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));

const pcWall: number = summary.run.wallSeconds;
const pcPasses: number = summary.run.ablationsRun;
const pcRate = pcPasses / pcWall;
const pyRate = timing.passes / timing.wallSeconds;
console.log(`\n| run | images | forward passes | wall s | passes/s | process wall s |`);
console.log(`|---|---:|---:|---:|---:|---:|`);
console.log(`| patchcert certify (onnx, ${values.threads} threads) | ${summary.images} | ${pcPasses} | ${pcWall.toFixed(1)} | ${Math.round(pcRate)} | ${pc.seconds.toFixed(1)} |`);
console.log(`| PyTorch ${timing.torch} loop (${timing.threads} threads, ${timing.batch} images x 1 position per call) | ${timing.images} | ${timing.passes} | ${timing.wallSeconds.toFixed(1)} | ${Math.round(pyRate)} | ${py.seconds.toFixed(1)} |`);
console.log(`\nratio patchcert/reference (passes/s): ${(pcRate / pyRate).toFixed(2)}`);

const byIndex = new Map(pcRows.map((r) => [r.index, r]));
const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
console.log(`\n| rule | images compared | counts agree | prediction agrees | certified side agrees |`);
console.log(`|---|---:|---:|---:|---:|`);
for (const rule of rules) {
  let n = 0, counts = 0, pred = 0, cert = 0;
  const diffs: string[] = [];
  for (const p of pyRows) {
    const q = byIndex.get(p.index)?.results[rule];
    const r = p.results[rule];
    if (!q || !r) continue;
    n++;
    if (same(q.counts, r.counts)) counts++;
    else if (diffs.length < 5) diffs.push(`#${p.index}: patchcert ${JSON.stringify(q.counts)} reference ${JSON.stringify(r.counts)}`);
    if (q.prediction === r.prediction) pred++;
    if (q.certified === r.certified) cert++;
  }
  console.log(`| ${rule} | ${n} | ${counts} | ${pred} | ${cert} |`);
  for (const d of diffs) console.log(`    ${d}`);
}
console.log(`\n(outputs in ${work})`);
