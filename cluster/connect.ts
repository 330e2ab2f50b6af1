// One way to connect to NATS for the coordinator, the workers and the CLI: servers, credentials
// (user/password, token, nkey seed, creds file) and TLS from options, falling back to the
// environment (NATS_URL, NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY, NATS_CA,
// NATS_CERT, NATS_KEY, NATS_INBOX_PREFIX).
import { existsSync, readFileSync } from 'node:fs';
import { type ConnectionOptions, type NatsConnection, connect, credsAuthenticator, nkeyAuthenticator } from '@nats-io/transport-node';

export interface NatsConnectOptions {
  /** server URL(s), e.g. nats://host:4222 (comma-separated in NATS_URL); default nats://127.0.0.1:4222 */
  servers?: string | string[];
  user?: string;
  password?: string;
  token?: string;
  /** path to a .creds file (JWT + nkey seed) */
  creds?: string;
  /** an nkey user seed ("SU...") or the path of a file holding one */
  nkey?: string;
  /** TLS: CA bundle to trust, and a client certificate + key for mutual TLS (file paths) */
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /**
   * subject prefix of this client's reply inboxes (default _INBOX). Per-client prefixes let the
   * server's permissions give each client its own replies only (deploy/nats/worker-users.sh).
   */
  inboxPrefix?: string;
  /** connection name shown by the server's monitoring */
  name?: string;
  /** keep reconnecting forever (default) or give up after this many attempts */
  maxReconnectAttempts?: number;
  reconnectTimeWaitMs?: number;
  /** how long one connection attempt may take (default 20 s) */
  connectTimeoutMs?: number;
}

/** Options from the environment, for the fields not set in `opts`. */
export function natsOptionsFromEnv(opts: NatsConnectOptions = {}, env: NodeJS.ProcessEnv = process.env): NatsConnectOptions {
  const pick = (v: string | undefined, e: string): string | undefined => v ?? (env[e] !== undefined && env[e] !== '' ? env[e] : undefined);
  const out: NatsConnectOptions = { ...opts };
  const servers = opts.servers ?? pick(undefined, 'NATS_URL')?.split(',').map((s) => s.trim()).filter(Boolean);
  if (servers !== undefined) out.servers = servers;
  const set = <K extends keyof NatsConnectOptions>(k: K, e: string) => {
    const v = pick(opts[k] as string | undefined, e);
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  };
  set('user', 'NATS_USER');
  set('password', 'NATS_PASSWORD');
  set('token', 'NATS_TOKEN');
  set('creds', 'NATS_CREDS');
  set('nkey', 'NATS_NKEY');
  set('tlsCa', 'NATS_CA');
  set('tlsCert', 'NATS_CERT');
  set('tlsKey', 'NATS_KEY');
  set('inboxPrefix', 'NATS_INBOX_PREFIX');
  return out;
}

function readable(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} file not found: ${path}`);
  return path;
}

/** The nats.js connection options for `opts` (environment not consulted; see natsOptionsFromEnv). */
export function natsConnectionOptions(opts: NatsConnectOptions): ConnectionOptions {
  const co: ConnectionOptions = {
    servers: opts.servers ?? 'nats://127.0.0.1:4222',
    maxReconnectAttempts: opts.maxReconnectAttempts ?? -1,
    reconnectTimeWait: opts.reconnectTimeWaitMs ?? 500,
    waitOnFirstConnect: false,
  };
  if (opts.name !== undefined) co.name = opts.name;
  if (opts.inboxPrefix !== undefined) {
    // a subject without wildcards; replies go to <prefix>.<unique>
    if (!/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/.test(opts.inboxPrefix)) throw new Error(`NATS inbox prefix ${JSON.stringify(opts.inboxPrefix)} is not a subject (letters, digits, _ - $ and dots; no wildcards)`);
    co.inboxPrefix = opts.inboxPrefix;
  }
  if (opts.connectTimeoutMs !== undefined) co.timeout = opts.connectTimeoutMs;
  const methods = [opts.user !== undefined, opts.token !== undefined, opts.creds !== undefined, opts.nkey !== undefined].filter(Boolean).length;
  if (methods > 1) throw new Error('NATS credentials: give only one of user/password, token, creds file or nkey seed');
  if (opts.user !== undefined) {
    co.user = opts.user;
    if (opts.password !== undefined) co.pass = opts.password;
  } else if (opts.password !== undefined) {
    throw new Error('NATS credentials: a password needs a user (NATS_USER)');
  }
  if (opts.token !== undefined) co.token = opts.token;
  if (opts.creds !== undefined) {
    const data = readFileSync(readable(opts.creds, 'NATS creds'));
    co.authenticator = credsAuthenticator(new Uint8Array(data));
  }
  if (opts.nkey !== undefined) {
    const seed = opts.nkey.startsWith('SU') ? opts.nkey : readFileSync(readable(opts.nkey, 'NATS nkey seed'), 'utf8').trim();
    if (!seed.startsWith('SU')) throw new Error('NATS nkey: expected a user seed starting with "SU" (or a file holding one)');
    co.authenticator = nkeyAuthenticator(new TextEncoder().encode(seed));
  }
  if (opts.tlsCa !== undefined || opts.tlsCert !== undefined || opts.tlsKey !== undefined) {
    if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new Error('NATS TLS: a client certificate needs its key and vice versa (NATS_CERT, NATS_KEY)');
    const tls: NonNullable<ConnectionOptions['tls']> = {};
    if (opts.tlsCa !== undefined) tls.caFile = readable(opts.tlsCa, 'NATS TLS CA');
    if (opts.tlsCert !== undefined) tls.certFile = readable(opts.tlsCert, 'NATS TLS certificate');
    if (opts.tlsKey !== undefined) tls.keyFile = readable(opts.tlsKey, 'NATS TLS key');
    co.tls = tls;
  }
  return co;
}

/** Connects with `opts`, completed from the environment. */
export async function connectNats(opts: NatsConnectOptions = {}): Promise<NatsConnection> {
  const o = natsOptionsFromEnv(opts);
  try {
    return await connect(natsConnectionOptions(o));
  } catch (e) {
    const where = Array.isArray(o.servers) ? o.servers.join(',') : (o.servers ?? 'nats://127.0.0.1:4222');
    throw new Error(`cannot connect to NATS at ${where}: ${e instanceof Error ? e.message : String(e)}`);
  }
}
