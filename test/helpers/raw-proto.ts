// Unchecked protobuf encoding, for tests that must put bad messages on the wire (the real
// encoders refuse to produce anything a receiver would reject).
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { PROTO_VERSION, type PartialVotesMessage } from '../../proto/index.js';

const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/patchcert.proto', import.meta.url)));

export function rawEncode(type: string, o: Record<string, unknown>): Uint8Array {
  const T = root.lookupType(`patchcert.v1.${type}`);
  return T.encode(T.fromObject(o)).finish();
}

export function rawPartialVotes(m: PartialVotesMessage): Uint8Array {
  return rawEncode('ResultMessage', {
    version: PROTO_VERSION,
    votes: { version: PROTO_VERSION, ...m, rules: m.counts.map((c) => ({ counts: Array.from(c) })) },
  });
}
