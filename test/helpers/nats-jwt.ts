// Just enough of NATS decentralized auth for tests: an operator, an account with JetStream and a
// user, as signed JWTs, the server config that trusts them, and the user's .creds file.
import { createHash } from 'node:crypto';
import { nkeys } from '@nats-io/transport-node';

const b64url = (b: Uint8Array | string): string => Buffer.from(b).toString('base64url');

type KeyPair = ReturnType<typeof nkeys.createUser>;

function sign(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string {
  const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
  const claims: Record<string, unknown> = { iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, nats: { ...nats, version: 2 } };
  claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('base64url').toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 52);
  const payload = b64url(JSON.stringify(claims));
  const sig = issuer.sign(new TextEncoder().encode(`${header}.${payload}`));
  return `${header}.${payload}.${b64url(sig)}`;
}

const UNLIMITED = { subs: -1, data: -1, payload: -1 };

export interface JwtSetup {
  /** server configuration text (operator mode, memory resolver) */
  serverConfig: string;
  /** a .creds file's text for a user of the account */
  creds: string;
}

export function jwtSetup(): JwtSetup {
  const op = nkeys.createOperator();
  const sys = nkeys.createAccount();
  const acc = nkeys.createAccount();
  const user = nkeys.createUser();
  const opJwt = sign(op, op.getPublicKey(), 'test-operator', { type: 'operator', system_account: sys.getPublicKey() });
  const accountLimits = { ...UNLIMITED, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const sysJwt = sign(op, sys.getPublicKey(), 'SYS', { type: 'account', limits: { ...accountLimits, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0 } });
  const accJwt = sign(op, acc.getPublicKey(), 'PATCHCERT', { type: 'account', limits: accountLimits });
  const userJwt = sign(acc, user.getPublicKey(), 'worker', { type: 'user', pub: {}, sub: {}, ...UNLIMITED });
  const seed = new TextDecoder().decode(user.getSeed());
  const creds = [
    '-----BEGIN NATS USER JWT-----',
    userJwt,
    '------END NATS USER JWT------',
    '',
    '************************* IMPORTANT *************************',
    'NKEY Seed printed below can be used to sign and prove identity.',
    'NKEYs are sensitive and should be treated as secrets.',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
  ].join('\n');
  const serverConfig = [
    `operator: "${opJwt}"`,
    `system_account: ${sys.getPublicKey()}`,
    'resolver: MEMORY',
    `resolver_preload: {\n  ${sys.getPublicKey()}: "${sysJwt}"\n  ${acc.getPublicKey()}: "${accJwt}"\n}`,
  ].join('\n');
  return { serverConfig, creds };
}
