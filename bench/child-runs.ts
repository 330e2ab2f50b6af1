// Child processes of the benchmarks: output captured, waited for by a line they print, and all
// killed on the way out (`killAll`).
import { type ChildProcess, spawn } from 'node:child_process';

export interface Run {
  proc: ChildProcess;
  out: string;
  err: string;
  exit: Promise<number | null>;
}

const children = new Set<ChildProcess>();

/** Spawns `cmd args` with stdout and stderr collected into the returned Run. */
export function startRun(cmd: string, args: string[]): Run {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  const r: Run = { proc, out: '', err: '', exit: new Promise((res) => proc.once('exit', (c) => (children.delete(proc), res(c)))) };
  proc.stdout!.on('data', (d) => (r.out += d));
  proc.stderr!.on('data', (d) => (r.err += d));
  return r;
}

/** Waits until the run's output matches `what`; throws if it exits or `ms` pass first. */
export async function until(r: Run, what: RegExp, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!what.test(r.out + r.err)) {
    if (r.proc.exitCode !== null || Date.now() > deadline) throw new Error(`no ${what} from process: ${r.out}\n${r.err.slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

export function killAll(): void {
  for (const c of children) c.kill('SIGKILL');
}
