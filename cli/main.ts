// patchcert command line: a thin layer over the library API.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type CertifyOptions, certifyLocal } from '../pipeline/certify-local.js';
import { type JobSummary, formatSummary } from '../outputs/job-outputs.js';
import { CERTIFY_FLAGS, DEFAULT_MODEL, FASHION_MNIST_DIR, type Flags, certifyOptionsFrom } from './options.js';
import { ProgressBar, formatDuration } from './progress.js';
import { COMMANDS as EXTRA_COMMANDS } from './commands.js';

const USAGE = `patchcert — certified defense against adversarial patches (Levine & Feizi 2020)

usage: patchcert <command> [options]

commands:
  demo                      certify the Fashion-MNIST test set with the bundled model
  certify                   certify a data set with a model on this machine (or on a cluster with --nats)
  report DIR                print the summary of a finished run
${Object.entries(EXTRA_COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(26)}${c.summary}`)
  .join('\n')}

certify options:
  --model PATH              model.manifest.json or its folder (default: bundled Fashion-MNIST model)
  --data PATH               data set: cifar-10-batches-bin folder, MNIST-format IDX folder/file, or ImageFolder root
  --format F                cifar10-bin | idx | imagefolder (default: detected)
  --split test|train        split of a cifar10-bin or idx folder (default test)
  --offset N --limit N      subset of the data set; --index-file FILE one data set index per line
  --resize N --crop N       ImageFolder: resize shorter side to N, centre crop (ImageNet: 256, 224)
  --scheme column|row|block --size S --stride T
                            ablation (default: what the model was trained for)
  --thresholds LIST         vote rules, e.g. 0.1,0.2,0.3,0.4 or argmax (default 0.3; argmax always added)
  --max-patch N             largest square patch side reported (default: image side)
  --backend B               auto | webgpu | cuda | tensorrt | onnx | tfjs-node-gpu | tfjs-node | tfjs-wasm (default auto;
                            auto takes cuda, then a hardware WebGPU adapter, never a software one)
  --threads N               backend threads; --prep-threads N preprocessing (piscina) threads
  --tile-images N --tile-ablations N   inference batch shape (fixed per job)
  --unit-images N           images per unit (resume granularity / work unit size)
  --unit-ablations N        ablations per unit (distributed jobs: splits the ablation index space too)
  --out DIR                 output folder (rerun into it to resume; --fresh to start over)
  --job FILE                job file (JSON or YAML) with the same option names
  --nats URL                run as a distributed job on a NATS JetStream cluster (see 'coordinator')
  --job-id ID               with --nats: name the job (default: derived from the options)
  --quiet                   no progress display

exit status: 0 every image certified; 2 some images or units failed (listed, and in summary.json;
             the good ones are in the outputs); 1 an error before any output (bad option, missing file)

environment: NATS_URL, NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY, NATS_CA, NATS_CERT, NATS_KEY,
             PATCHCERT_BACKEND
`;

export async function runCertify(opts: CertifyOptions, quiet: boolean): Promise<JobSummary> {
  const bar = new ProgressBar();
  const res = await certifyLocal({
    ...opts,
    onBackend: (b) => {
      if (quiet) return;
      process.stderr.write(`backend: ${b.name} (${b.device})\n`);
      for (const s of b.skipped) process.stderr.write(`  skipped ${s.name}: ${s.reason}\n`);
    },
    onProgress: quiet
      ? undefined
      : (p) =>
          bar.update({
            label: 'certifying images',
            done: p.imagesDone,
            total: p.images,
            rate: `${p.imagesPerSecond.toFixed(1)} images/s, ${p.ablationsPerSecond.toFixed(0)} ablations/s`,
            etaSeconds: p.etaSeconds,
          }),
  });
  bar.end();
  return res.summary;
}

function printResult(summary: JobSummary, out: string): void {
  process.stdout.write(formatSummary(summary) + '\n');
  if (summary.failedImages.length > 0) {
    process.stdout.write(`failed images (${summary.failedImages.length}):\n`);
    for (const f of summary.failedImages.slice(0, 20)) {
      process.stdout.write(`  #${f.index} ${f.error.includes(f.source) ? f.error : `${f.source}: ${f.error}`}\n`);
    }
    if (summary.failedImages.length > 20) process.stdout.write(`  … see ${join(out, 'summary.json')}\n`);
  }
  for (const u of summary.failedUnits) process.stdout.write(`failed unit ${u.unitId} after ${u.attempts} attempt(s): ${u.error}\n`);
  process.stdout.write(`results in ${out} (images.jsonl, summary.json, certified.csv, certified.svg)\n`);
  if (summary.failedImages.length + summary.failedUnits.length > 0) {
    process.stdout.write(`${summary.certifiedImages}/${summary.images} images certified, ${summary.failedImages.length} failed; ${summary.failedUnits.length} units failed\n`);
  }
}

async function certifyCommand(args: string[], defaults: Partial<CertifyOptions>): Promise<number> {
  // `certify --nats URL …` is the distributed coordinator, with its extra NATS flags.
  if (args.some((a) => a === '--nats' || a.startsWith('--nats='))) {
    const coordinator = EXTRA_COMMANDS.coordinator;
    if (!coordinator) throw new Error('distributed certification is not available in this build');
    return coordinator.run(args);
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { values } = parseArgs({ args, options: CERTIFY_FLAGS, allowPositionals: false, strict: true });
  const flags = values as Flags;
  const opts = certifyOptionsFrom(flags, defaults);
  const summary = await runCertify(opts, flags.quiet ?? false);
  printResult(summary, opts.out);
  return summary.failedUnits.length + summary.failedImages.length > 0 ? 2 : 0;
}

async function reportCommand(args: string[]): Promise<number> {
  const dir = args[0];
  if (dir === '--help' || dir === '-h') {
    process.stdout.write('usage: patchcert report DIR\n\nPrints the summary of a finished run from DIR/summary.json.\n');
    return 0;
  }
  if (!dir) throw new Error('usage: patchcert report DIR');
  const path = join(resolve(dir), 'summary.json');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`no summary in ${dir}: ${path} not found (has the run finished?)`);
  }
  const s = JSON.parse(text) as JobSummary;
  printResult(s, resolve(dir));
  process.stdout.write(`wall time ${formatDuration(s.run.wallSeconds)}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return cmd === undefined ? 1 : 0;
    case 'certify':
      return certifyCommand(rest, {});
    case 'demo':
      return certifyCommand(rest, {
        model: DEFAULT_MODEL,
        data: { format: 'idx', path: FASHION_MNIST_DIR, split: 'test' },
        out: resolve('out', 'demo'),
        rules: [0.3],
      });
    case 'report':
      return reportCommand(rest);
    default: {
      const extra = EXTRA_COMMANDS[cmd];
      if (extra) return extra.run(rest);
      process.stderr.write(`unknown command "${cmd}"\n\n${USAGE}`);
      return 1;
    }
  }
}
