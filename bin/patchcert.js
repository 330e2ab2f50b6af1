#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// Once a command is done, a lingering handle (a NATS client still retrying a vanished server, say)
// must not keep the process alive: exit after a short grace period if the loop has not emptied.
const finish = (code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2000).unref();
};

// `patchcert report DIR | head`: a reader that went away is not an error of ours
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

main(process.argv.slice(2)).then(finish, (err) => {
  process.stderr.write(`patchcert: ${err instanceof Error ? err.message : String(err)}\n`);
  if (process.env.PATCHCERT_DEBUG) console.error(err);
  finish(1);
});
