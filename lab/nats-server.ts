// A real nats-server for tests and benchmarks: a free loopback port (tried again on fresh ports
// when another process takes it first), its own temp store dir (JetStream on),
// readiness by the monitoring /healthz endpoint, stop / kill / restart on the same port and
// store, and cleanup. Also a 3-server JetStream cluster with routes on loopback.
//
// Every server started here is killed when the test process exits, whatever happened.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NATS_SERVER_BIN =
  process.env.NATS_SERVER_BIN ?? ['/usr/bin/nats-server', '/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ?? 'nats-server';

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // gone
    }
  }
});

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => res(port));
    });
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Starts on fresh ports after a bind failure this many times in all. */
const START_ATTEMPTS = 5;

/** The server could not bind its client or monitoring port (taken since freePort found it free). */
export function isBindFailure(e: unknown): boolean {
  return /address already in use/i.test(e instanceof Error ? e.message : String(e));
}

export interface NatsServerOptions {
  /** bind address (default 127.0.0.1) */
  host?: string;
  port?: number;
  monitorPort?: number;
  /** JetStream store dir (default: a new temp dir, removed by cleanup) */
  storeDir?: string;
  serverName?: string;
  /** cluster block: routes to the other servers' cluster ports */
  cluster?: { name: string; port: number; routes: string[] };
  /** extra configuration text (accounts, authorization, tls, ...) */
  extraConfig?: string;
  /** files written next to the config (for `include`), by name */
  files?: Record<string, string>;
  /** environment of the server process (config variables such as passwords) */
  env?: Record<string, string>;
  /** command prefix to run the server with, e.g. ['ip', 'netns', 'exec', NS] */
  wrap?: string[];
  /** ready when the log says so (for a server this process cannot reach over the network) */
  readyByLog?: boolean;
  /** how long to wait for readiness (default 15 s) */
  readyTimeoutMs?: number;
  /** wait for JetStream to be ready too (default true; a clustered server waits for the cluster) */
  waitJetStream?: boolean;
  /** how to find a free port for `port` / `monitorPort` when not given (default freePort) */
  pickPort?: (host: string) => Promise<number>;
}

export class NatsServer {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly dir: string;
  readonly storeDir: string;
  readonly configFile: string;
  readonly logFile: string;
  private ownStore: boolean;

  private constructor(
    readonly host: string,
    readonly port: number,
    readonly monitorPort: number,
    private readonly opts: NatsServerOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'patchcert-nats-'));
    this.ownStore = opts.storeDir === undefined;
    this.storeDir = opts.storeDir ?? join(this.dir, 'store');
    this.configFile = join(this.dir, 'nats.conf');
    this.logFile = join(this.dir, 'nats.log');
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(opts: NatsServerOptions = {}): Promise<NatsServer> {
    const host = opts.host ?? '127.0.0.1';
    const probeHost = opts.wrap ? '127.0.0.1' : host; // ports are free in a fresh namespace anyway
    // A port found free can be taken by another process before the server binds it (parallel
    // tests do exactly that): on a bind failure, start again on fresh ports, unless both were given.
    const canRetry = opts.port === undefined || opts.monitorPort === undefined;
    for (let attempt = 1; ; attempt++) {
      const pick = opts.pickPort ?? freePort;
      const s = new NatsServer(host, opts.port ?? (await pick(probeHost)), opts.monitorPort ?? (await pick(probeHost)), opts);
      await s.writeConfig();
      try {
        await s.launch();
        return s;
      } catch (e) {
        await s.cleanup();
        if (!canRetry || attempt >= START_ATTEMPTS || !isBindFailure(e)) throw e;
      }
    }
  }

  private async writeConfig(): Promise<void> {
    const o = this.opts;
    const lines = [
      `listen: "${this.host}:${this.port}"`,
      `http: "${this.host}:${this.monitorPort}"`,
      `server_name: "${o.serverName ?? `pc-${this.port}`}"`,
      `jetstream { store_dir: ${JSON.stringify(this.storeDir)}, max_memory_store: 256MB, max_file_store: 2GB }`,
    ];
    if (o.cluster) {
      lines.push(`cluster { name: "${o.cluster.name}", listen: "${this.host}:${o.cluster.port}", routes: [${o.cluster.routes.map((r) => JSON.stringify(r)).join(', ')}] }`);
    }
    if (o.extraConfig) lines.push(o.extraConfig);
    for (const [name, text] of Object.entries(o.files ?? {})) await writeFile(join(this.dir, name), text);
    await writeFile(this.configFile, lines.join('\n') + '\n');
  }

  private async launch(): Promise<void> {
    if (this.running) throw new Error('nats-server already running');
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const wrap = this.opts.wrap ?? [];
    const argv = [...wrap, NATS_SERVER_BIN, '-c', this.configFile];
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(this.opts.env ?? {}) } });
    // both streams into one log, ended once the process has closed both (piping with the default
    // end: true would end it with the first, losing what the other still had: the fatal error)
    p.stdout!.pipe(log, { end: false });
    p.stderr!.pipe(log, { end: false });
    live.add(p);
    this.proc = p;
    const logWritten = new Promise<void>((res) => log.once('close', () => res()));
    this.exited = new Promise<void>((res) => {
      p.once('close', () => {
        live.delete(p);
        log.end();
        void logWritten.then(res);
      });
      p.once('error', () => {
        live.delete(p);
        log.end();
        res();
      });
    });
    await this.waitReady();
  }

  /** Polls /healthz until the server (and JetStream) is ready. */
  async waitReady(timeoutMs = this.opts.readyTimeoutMs ?? 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const path = this.opts.waitJetStream === false ? '/varz' : '/healthz';
    let last = '';
    const logStart = existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').length : 0;
    while (Date.now() < deadline) {
      if (!this.running) {
        await this.exited; // its log written out: the reason is in it
        throw new Error(`nats-server (${NATS_SERVER_BIN}) exited while starting; log:\n${this.logTail()}`);
      }
      if (this.opts.readyByLog) {
        if (existsSync(this.logFile) && readFileSync(this.logFile, 'utf8').slice(logStart).includes('Server is ready')) return;
        await sleep(50);
        continue;
      }
      try {
        const r = await fetch(`http://${this.host}:${this.monitorPort}${path}`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
        last = `${r.status} ${await r.text()}`;
      } catch (e) {
        last = String(e);
      }
      await sleep(50);
    }
    throw new Error(`nats-server on port ${this.port} not ready after ${timeoutMs} ms (${last}); log:\n${this.logTail()}`);
  }

  logTail(lines = 30): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n') : '';
  }

  /** Graceful stop (SIGTERM), waiting for exit. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill('SIGTERM');
    const t = setTimeout(() => this.proc?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }

  /** Abrupt death (SIGKILL): what a crashed host looks like. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.proc!.kill('SIGKILL');
    await this.exited;
  }

  /** Starts again on the same port with the same store. */
  async restart(opts: { kill?: boolean } = {}): Promise<void> {
    await (opts.kill ? this.kill() : this.stop());
    await this.launch();
  }

  async start(): Promise<void> {
    await this.launch();
  }

  /** Stops the server and removes its temp dir (and its store, unless the store was given). */
  async cleanup(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
    if (!this.ownStore) return;
  }
}

export class NatsCluster {
  private constructor(readonly servers: NatsServer[]) {}

  /** Client URLs of every server (give them all to clients so they fail over). */
  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  static async start(size = 3, opts: Pick<NatsServerOptions, 'extraConfig' | 'readyTimeoutMs' | 'files' | 'env'> = {}): Promise<NatsCluster> {
    const name = `pc-cluster-${process.pid}-${Date.now() % 100000}`;
    const clusterPorts: number[] = [];
    for (let i = 0; i < size; i++) clusterPorts.push(await freePort());
    const routes = clusterPorts.map((p) => `nats-route://127.0.0.1:${p}`);
    // start them together: JetStream in a cluster is ready only once a meta leader is elected
    const servers = await Promise.all(
      clusterPorts.map((cp, i) =>
        NatsServer.start({
          serverName: `${name}-n${i}`,
          cluster: { name, port: cp, routes: routes.filter((_, j) => j !== i) },
          readyTimeoutMs: opts.readyTimeoutMs ?? 30_000,
          ...(opts.extraConfig !== undefined ? { extraConfig: opts.extraConfig } : {}),
          ...(opts.files !== undefined ? { files: opts.files } : {}),
          ...(opts.env !== undefined ? { env: opts.env } : {}),
        }),
      ),
    );
    return new NatsCluster(servers);
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.cleanup()));
  }
}
