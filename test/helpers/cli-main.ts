// Runs one of the distributed CLI commands in a child process: node cli-main.js CMD ARGS...
import { DISTRIBUTED_COMMANDS } from '../../coordinator/cli-commands.js';

const [cmd, ...args] = process.argv.slice(2);
const c = cmd ? DISTRIBUTED_COMMANDS[cmd] : undefined;
if (!c) {
  process.stderr.write(`unknown command ${String(cmd)}\n`);
  process.exit(1);
}
c.run(args).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`patchcert ${cmd}: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
