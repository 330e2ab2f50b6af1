// Waiting in tests and benchmarks: for a condition, and for workers as their heartbeats show them
// (connected and pulling, or holding units).
import { connect } from '@nats-io/transport-node';
import { HEARTBEAT_SUBJECT } from '../cluster/layout.js';
import { decodeHeartbeat } from '../proto/index.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves when `cond` holds (polled), or rejects after `ms`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Waits until every worker in `ids` has sent a heartbeat (they are connected and pulling). */
export async function waitWorkersLive(servers: string[], ids: readonly string[], ms = 20_000, auth: { user?: string; pass?: string } = {}): Promise<void> {
  const nc = await connect({ servers, ...auth });
  try {
    const seen = new Set<string>();
    const sub = nc.subscribe(HEARTBEAT_SUBJECT);
    const done = (async () => {
      for await (const m of sub) {
        try {
          seen.add(decodeHeartbeat(m.data, m.subject).workerId);
        } catch {
          // ignore
        }
        if (ids.every((id) => seen.has(id))) return;
      }
    })();
    const timer = setTimeout(() => sub.unsubscribe(), ms);
    await done;
    clearTimeout(timer);
    if (!ids.every((id) => seen.has(id))) throw new Error(`workers not live after ${ms} ms: ${ids.filter((id) => !seen.has(id)).join(', ')}`);
  } finally {
    await nc.close();
  }
}

/** Resolves with the units a worker reports in flight once it reports at least `n` of them. */
export async function waitInFlight(servers: string[], workerId: string, n = 1, ms = 20_000): Promise<string[]> {
  const nc = await connect({ servers });
  try {
    const sub = nc.subscribe(HEARTBEAT_SUBJECT);
    const timer = setTimeout(() => sub.unsubscribe(), ms);
    for await (const m of sub) {
      try {
        const hb = decodeHeartbeat(m.data, m.subject);
        if (hb.workerId === workerId && hb.inFlight.length >= n) {
          clearTimeout(timer);
          return hb.inFlight;
        }
      } catch {
        // ignore
      }
    }
    throw new Error(`worker ${workerId} did not report ${n} unit(s) in flight within ${ms} ms`);
  } finally {
    await nc.close();
  }
}
