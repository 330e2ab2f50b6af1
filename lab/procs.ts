// Child processes of the distributed tests and benchmarks (workers, coordinators, the CLI): spawned from dist/, their
// output captured, all of them killed by cleanup() and, whatever happens, when the test process
// exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type FakeKnobs, knobsToEnv } from './fake-executor.js';

const everyChild = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of everyChild) {
    try {
      c.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

export const WORKER_MAIN = fileURLToPath(new URL('./fake-worker-main.js', import.meta.url));
/** lab/forging-worker-main.ts: a hostile worker (see there) */
export const FORGER_MAIN = fileURLToPath(new URL('./forging-worker-main.js', import.meta.url));
export const COORDINATOR_MAIN = fileURLToPath(new URL('./coordinator-main.js', import.meta.url));
/** bin/patchcert.js, the installed CLI */
export const CLI_MAIN = fileURLToPath(new URL('../../bin/patchcert.js', import.meta.url));

export class Proc {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  constructor(readonly name: string, readonly child: ChildProcess) {
    everyChild.add(child);
    child.stdout?.on('data', (d) => (this.out += d));
    child.stderr?.on('data', (d) => (this.out += d));
    this.exited = new Promise((res) => {
      child.once('exit', (code, signal) => {
        everyChild.delete(child);
        res({ code, signal });
      });
    });
  }
  get pid(): number {
    return this.child.pid!;
  }
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  output(): string {
    return this.out;
  }
  kill(sig: NodeJS.Signals = 'SIGKILL'): void {
    if (this.running) this.child.kill(sig);
  }
  /** Waits for exit, killing the process if it takes longer than `ms`. */
  async waitExit(ms = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const t = setTimeout(() => this.kill('SIGKILL'), ms);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }
}

export interface WorkerSpawnOptions {
  workerId: string;
  /** command prefix, e.g. ['ip', 'netns', 'exec', NS] to run it on another "host" */
  wrap?: string[];
  concurrency?: number;
  knobs?: FakeKnobs;
  env?: Record<string, string>;
}

export class Procs {
  readonly all: Proc[] = [];

  spawnNode(name: string, script: string, env: Record<string, string>, args: string[] = [], wrap: string[] = []): Proc {
    const argv = [...wrap, process.execPath, script, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new Proc(name, child);
    this.all.push(p);
    return p;
  }

  worker(servers: string | string[], o: WorkerSpawnOptions): Proc {
    return this.spawnNode(o.workerId, WORKER_MAIN, {
      NATS_URL: Array.isArray(servers) ? servers.join(',') : servers,
      WORKER_ID: o.workerId,
      WORKER_CONCURRENCY: String(o.concurrency ?? 1),
      ...knobsToEnv(o.knobs ?? {}),
      ...(o.env ?? {}),
    }, [], o.wrap ?? []);
  }

  coordinator(servers: string | string[], jobFile: string, resultFile: string, opts: Record<string, unknown> = {}, name = 'coordinator', wrap: string[] = []): Proc {
    return this.spawnNode(name, COORDINATOR_MAIN, {
      NATS_URL: Array.isArray(servers) ? servers.join(',') : servers,
      COORD_JOB_FILE: jobFile,
      COORD_RESULT_FILE: resultFile,
      COORD_OPTS: JSON.stringify(opts),
    }, [], wrap);
  }

  /** `patchcert ARGS...` (bin/patchcert.js) in a child process. */
  cli(name: string, args: string[], env: Record<string, string> = {}): Proc {
    return this.spawnNode(name, CLI_MAIN, env, args);
  }

  /** Output of every process, for a failing test's log. */
  outputs(): string {
    return this.all.map((p) => `----- ${p.name} (pid ${p.pid})\n${p.output()}`).join('\n');
  }

  async cleanup(): Promise<void> {
    for (const p of this.all) {
      // a stopped (partitioned) process must be continued before it can die of SIGTERM; SIGKILL works anyway
      p.kill('SIGKILL');
    }
    await Promise.all(this.all.map((p) => p.exited));
  }
}
