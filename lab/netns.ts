// A small network of "hosts" on this machine: one network namespace per host, each with an eth0
// on a private /24, all plugged into a bridge that lives in its own "switch" namespace. Nothing
// is added to the machine's own namespace. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
import { execFileSync } from 'node:child_process';

const IP = '/usr/sbin/ip';
const ipBin = (): string => {
  for (const p of [IP, '/sbin/ip', '/usr/bin/ip', '/bin/ip']) {
    try {
      execFileSync(p, ['-V'], { stdio: 'ignore' });
      return p;
    } catch {
      // next
    }
  }
  return 'ip';
};

function ip(...args: string[]): void {
  execFileSync(ipBin(), args, { stdio: 'pipe' });
}

/** Why network namespaces cannot be used here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  const probe = `pcprobe${process.pid}`;
  try {
    ip('netns', 'add', probe);
  } catch (e) {
    const err = (e as { stderr?: Buffer }).stderr?.toString().trim() || String(e);
    return `'ip netns add' is not permitted here (${err}); the namespace scaling test needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN`;
  }
  try {
    ip('-n', probe, 'link', 'add', 'pcv0', 'type', 'veth', 'peer', 'name', 'pcv1');
    ip('-n', probe, 'link', 'add', 'pcbr', 'type', 'bridge');
  } catch (e) {
    return `veth/bridge devices cannot be created in a network namespace (${(e as { stderr?: Buffer }).stderr?.toString().trim() || String(e)})`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch {
      // gone
    }
  }
  return undefined;
}

const live = new Set<NetLab>();
process.on('exit', () => {
  for (const lab of live) lab.destroySync();
});

export class NetLab {
  private readonly addrs = new Map<string, string>();
  private readonly namespaces: string[] = [];

  private constructor(readonly prefix: string, readonly subnet: string) {}

  /** Creates the switch and one namespace per host name (short names: a-z0-9). */
  static create(hosts: string[]): NetLab {
    const id = process.pid % 10000;
    const lab = new NetLab(`pc${id}`, `10.231.${(process.pid % 250) + 1}`);
    live.add(lab);
    try {
      const sw = lab.ns('sw');
      ip('netns', 'add', sw);
      lab.namespaces.push(sw);
      ip('-n', sw, 'link', 'set', 'lo', 'up');
      ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', sw, 'link', 'set', 'br0', 'up');
      hosts.forEach((h, i) => {
        const ns = lab.ns(h);
        ip('netns', 'add', ns);
        lab.namespaces.push(ns);
        ip('-n', sw, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
        ip('-n', sw, 'link', 'set', `v${i}`, 'master', 'br0');
        ip('-n', sw, 'link', 'set', `v${i}`, 'up');
        const addr = `${lab.subnet}.${i + 10}`;
        ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
        ip('-n', ns, 'link', 'set', 'eth0', 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        lab.addrs.set(h, addr);
      });
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  ns(host: string): string {
    return `${this.prefix}-${host}`;
  }

  /** The host's address on the lab network. */
  addr(host: string): string {
    const a = this.addrs.get(host);
    if (!a) throw new Error(`no host ${host} in the lab`);
    return a;
  }

  /** Command prefix that runs a program on `host`. */
  exec(host: string): string[] {
    return [ipBin(), 'netns', 'exec', this.ns(host)];
  }

  /** Cuts a host off the switch (link down), or plugs it back. */
  setLink(host: string, up: boolean): void {
    ip('-n', this.ns(host), 'link', 'set', 'eth0', up ? 'up' : 'down');
  }

  destroySync(): void {
    for (const ns of this.namespaces.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // gone
      }
    }
    this.namespaces.length = 0;
    live.delete(this);
  }
}
