// Cost of replicated units (issue 13): the same job with --replicate 0, 0.1 and 1, through the CLI
// (`patchcert coordinator` + N `patchcert worker` processes, onnx backend) on a real nats-server.
// Reports wall time, certified ablations per second of wall time (the useful rate) and the
// ablations actually computed (replicas included), and checks that images.jsonl is byte-identical
// across the fractions: replication must change the cost, never a certificate.
//
//   npx tsc -p tsconfig.json
//   node dist/bench/replication.js [--fractions 0,0.1,1] [--workers 2] [--limit 600]
//        [--model models/fashion-mnist-column2] [--data /usr/share/datasets/fashion-mnist] [--unit-images 50]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CLI, REPO_ROOT } from '../lab/paths.js';
import { startBenchServer } from './bench-server.js';
import { machineLine } from './proc-stats.js';

const { values: a } = parseArgs({
  options: {
    fractions: { type: 'string', default: '0,0.1,1' },
    workers: { type: 'string', default: '2' },
    limit: { type: 'string', default: '600' },
    model: { type: 'string', default: join(REPO_ROOT, 'models', 'fashion-mnist-column2') },
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    'unit-images': { type: 'string', default: '50' },
  },
});
const dir = mkdtempSync(join(tmpdir(), 'patchcert-replication-'));

function runCli(args: string[]): { done: Promise<{ code: number | null; out: string }>; kill: (s: NodeJS.Signals) => void } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATCHCERT_BACKEND: '' } });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return { done: new Promise((res) => child.on('exit', (code) => res({ code, out }))), kill: (s) => child.kill(s) };
}

async function main(): Promise<void> {
  console.log(machineLine());
  const rows: string[] = [];
  let reference: Buffer | undefined;
  for (const f of a.fractions!.split(',').map(Number)) {
    // a fresh server and fresh workers per fraction: no warm caches carried from one to the next
    const server = await startBenchServer();
    const workers = Array.from({ length: Number(a.workers) }, (_, i) =>
      runCli(['worker', '--nats', server.url, '--backend', 'onnx', '--threads', '1', '--prep-threads', '1', '--concurrency', '2', '--worker-id', `rep-w${i}`, '--quiet']),
    );
    const out = join(dir, `rep-${f}`);
    const t0 = performance.now();
    const c = runCli(['coordinator', '--nats', server.url, '--model', a.model!, '--data', a.data!, '--limit', a.limit!, '--backend', 'onnx',
      '--unit-images', a['unit-images']!, '--replicate', String(f), '--job-id', `replication-${String(f).replace('.', '_')}`, '--out', out, '--quiet']);
    const r = await c.done;
    const wall = (performance.now() - t0) / 1000;
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.done));
    await server.cleanup();
    if (r.code !== 0) throw new Error(`replicate ${f}: coordinator exited ${r.code}\n${r.out}`);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { images: number; ablationsPerImage: number; run: { ablationsComputed?: number } };
    const images = readFileSync(join(out, 'images.jsonl'));
    if (reference && !images.equals(reference)) throw new Error(`replicate ${f}: images.jsonl differs from replicate ${a.fractions!.split(',')[0]}`);
    reference ??= images;
    const certified = s.images * s.ablationsPerImage;
    const computed = s.run.ablationsComputed ?? certified;
    rows.push(`| ${f} | ${wall.toFixed(1)} | ${(certified / wall).toFixed(0)} | ${computed} | ${(computed / certified).toFixed(2)} |`);
    console.log(rows[rows.length - 1]);
  }
  console.log(`\n${a.limit} Fashion-MNIST test images, ${a.workers} workers (onnx, 1 thread), units of ${a['unit-images']} images; images.jsonl identical across fractions`);
  console.log('| replicate | wall s | certified ablations/s | ablations computed | computed / certified |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

main()
  .catch((e) => {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  })
  .finally(() => rmSync(dir, { recursive: true, force: true }));
