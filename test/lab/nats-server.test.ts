// The lab's nats-server launcher survives the free-port race: a port found free but taken by
// someone else before the server binds it makes the start try again on fresh ports.
import { createServer, type Server } from 'node:net';
import test from 'ava';
import { NatsServer, freePort, isBindFailure } from '../../lab/nats-server.js';

function listen(): Promise<{ server: Server; port: number }> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.on('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      res({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}

test('a monitor port taken after it was found free: the start retries on fresh ports', async (t) => {
  const taken = await listen();
  t.teardown(() => taken.server.close());
  // the client port is free, the monitor port is the one someone else holds, once
  const picks: number[] = [];
  let calls = 0;
  const pickPort = async (host: string) => {
    calls++;
    const p = calls === 2 ? taken.port : await freePort(host);
    picks.push(p);
    return p;
  };
  const s = await NatsServer.start({ pickPort, waitJetStream: false });
  t.teardown(() => s.cleanup());
  t.true(s.running);
  t.true(calls >= 4, `ports picked: ${picks.join(', ')}`);
  t.not(s.monitorPort, taken.port);
  const r = await fetch(`http://127.0.0.1:${s.monitorPort}/varz`);
  t.true(r.ok);
});

test('both ports given and one taken: the bind failure is reported, not retried', async (t) => {
  const taken = await listen();
  t.teardown(() => taken.server.close());
  const port = await freePort();
  const e = await t.throwsAsync(NatsServer.start({ port, monitorPort: taken.port, waitJetStream: false }));
  t.true(isBindFailure(e), e?.message);
});
