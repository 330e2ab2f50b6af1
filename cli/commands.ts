// Commands beyond certify/demo/report, each a thin wrapper over a library entry point.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { DISTRIBUTED_COMMANDS } from './distributed-commands.js';
import { fetchCommand } from './fetch-command.js';
import { PACKAGE_ROOT } from './options.js';

export interface Command {
  summary: string;
  run(args: string[]): Promise<number>;
}

export const COMMANDS: Record<string, Command> = {
  ...DISTRIBUTED_COMMANDS,
  fetch: {
    summary: 'fetch NAME: download cifar10, mnist or fashion-mnist from the official source, md5-checked (--help)',
    run: fetchCommand,
  },
  train: {
    summary: 'train a base classifier on ablated images (Python/PyTorch, see training/README.md)',
    run: (args) =>
      new Promise((resolvePromise, reject) => {
        const python = process.env.PATCHCERT_PYTHON ?? '/usr/bin/python3';
        const child = spawn(python, ['-m', 'training.train', ...args], { cwd: PACKAGE_ROOT, stdio: 'inherit' });
        child.on('error', (err) => reject(new Error(`cannot start ${python} (set PATCHCERT_PYTHON): ${err.message}`)));
        child.on('exit', (code) => resolvePromise(code ?? 1));
      }),
  },
};

export function trainingDir(): string {
  return join(PACKAGE_ROOT, 'training');
}
