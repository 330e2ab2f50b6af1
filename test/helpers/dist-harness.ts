// Set-up shared by the distributed tests: a real nats-server (or cluster), a fake model and job in
// a temp dir, a process list, and a teardown that kills every process and server and removes the
// temp dir even when the test fails (printing the processes' output then).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { JobSpec } from '../../core/index.js';
import type { CoordinatorOptions } from '../../coordinator/coordinator.js';
import { type FakeJobOptions, makeFakeJob } from '../../lab/fake-executor.js';
import { NatsCluster, NatsServer, type NatsServerOptions } from '../../lab/nats-server.js';
import { Procs } from '../../lab/procs.js';

export interface Dist {
  server?: NatsServer;
  cluster?: NatsCluster;
  /** client URL(s) */
  servers: string[];
  dir: string;
  job: JobSpec;
  jobFile: string;
  procs: Procs;
  /** coordinator options for an in-process runCoordinator */
  coordOpts: (extra?: Partial<CoordinatorOptions>) => CoordinatorOptions;
  log: string[];
}

export interface DistSetup extends Partial<FakeJobOptions> {
  images: number;
  cluster?: boolean;
  /** options of the single server (auth, TLS, ...) */
  server?: NatsServerOptions;
  ackWaitMs?: number;
}

let counter = 0;

export async function distSetup(t: ExecutionContext, o: DistSetup): Promise<Dist> {
  const dir = await mkdtemp(join(tmpdir(), 'patchcert-dist-'));
  const procs = new Procs();
  const log: string[] = [];
  let server: NatsServer | undefined;
  let cluster: NatsCluster | undefined;
  t.teardown(async () => {
    if (!t.passed) {
      console.error(`===== ${t.title}: coordinator log\n${log.join('\n')}\n${procs.outputs()}`);
      if (server) console.error(`----- nats-server\n${server.logTail(40)}`);
    }
    await procs.cleanup();
    await server?.cleanup();
    await cluster?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });
  if (o.cluster) cluster = await NatsCluster.start(3);
  else server = await NatsServer.start(o.server ?? {});
  const servers = cluster ? cluster.urls : [server!.url];
  const job = await makeFakeJob(join(dir, 'model'), { jobId: o.jobId ?? `job-${process.pid}-${++counter}`, ...o });
  const jobFile = join(dir, 'job.json');
  await writeFile(jobFile, JSON.stringify(job));
  const ackWaitMs = o.ackWaitMs ?? 2000;
  return {
    ...(server ? { server } : {}),
    ...(cluster ? { cluster } : {}),
    servers,
    dir,
    job,
    jobFile,
    procs,
    log,
    coordOpts: (extra = {}) => ({
      job,
      servers,
      ackWaitMs,
      progressIntervalMs: 250,
      reconnectTimeWaitMs: 200,
      log: (s: string) => log.push(`${new Date().toISOString().slice(11, 23)} ${s}`),
      ...(cluster ? { replicas: 3 } : {}),
      ...extra,
    }),
  };
}

export { sleep, waitFor, waitInFlight, waitWorkersLive } from '../../lab/wait.js';
