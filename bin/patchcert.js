#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`patchcert: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.PATCHCERT_DEBUG) console.error(err);
    process.exitCode = 1;
  },
);
