// A nats-server for the benchmarks (the lab's launcher), on ports clear of 45300-45399, which
// long-running jobs on the shared development machine use.
import { NatsServer, type NatsServerOptions, freePort } from '../lab/nats-server.js';

async function portOutside(lo: number, hi: number, host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const p = await freePort(host);
    if (p < lo || p > hi) return p;
  }
}

export async function startBenchServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  return NatsServer.start({ port: await portOutside(45300, 45399), monitorPort: await portOutside(45300, 45399), ...opts });
}
