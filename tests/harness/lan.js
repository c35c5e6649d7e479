// Separate "machines" on one box: one network namespace per node, all on
// one bridge in the root namespace (which also reaches them, for the mail
// server and for driving their browsers). Needs root, iproute2 and iptables.

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
const iptables = (ns, ...args) => execFileSync('ip', ['netns', 'exec', ns, 'iptables', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });

export class Lan {
  /** Creates `count` namespaces on a fresh bridge and subnet. */
  static create(count) {
    const lan = new Lan();
    const tag = crypto.randomBytes(2).toString('hex');
    const [b, c] = crypto.randomBytes(2);
    lan.subnet = `10.${100 + (b % 150)}.${c}`;
    lan.gateway = `${lan.subnet}.1`;
    lan.bridge = `mmbr${tag}`;
    lan.hosts = [];
    try {
      ip('link', 'add', 'name', lan.bridge, 'type', 'bridge', 'mcast_snooping', '0');
      ip('addr', 'add', `${lan.gateway}/24`, 'dev', lan.bridge);
      ip('link', 'set', lan.bridge, 'up');
      for (let i = 0; i < count; i++) {
        const host = { ns: `mm${tag}n${i}`, outer: `mm${tag}v${i}`, ip: `${lan.subnet}.${10 + i}` };
        ip('netns', 'add', host.ns);
        lan.hosts.push(host);
        ip('link', 'add', host.outer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns);
        ip('link', 'set', host.outer, 'master', lan.bridge, 'up');
        ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0');
        ip('-n', host.ns, 'link', 'set', 'eth0', 'up');
        ip('-n', host.ns, 'link', 'set', 'lo', 'up');
        ip('-n', host.ns, 'route', 'add', 'default', 'via', lan.gateway);
      }
    } catch (e) {
      lan.destroy();
      throw new Error(`cannot build the test LAN (root and iproute2 needed): ${e.stderr ?? e.message}`);
    }
    return lan;
  }

  /** The command line that runs `argv` on host `i`. */
  exec(i, argv) {
    return ['ip', ['netns', 'exec', this.hosts[i].ns, ...argv]];
  }

  /**
   * Makes every host ask `nameserver` for names: `ip netns exec` mounts
   * /etc/netns/NS/resolv.conf over /etc/resolv.conf for what it starts.
   */
  useDns(nameserver) {
    for (const host of this.hosts) {
      mkdirSync(`/etc/netns/${host.ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${host.ns}/resolv.conf`, `nameserver ${nameserver}\n`);
    }
  }

  /** Pulls host `i`'s cable out of the bridge. */
  cut(i) {
    ip('link', 'set', this.hosts[i].outer, 'down');
  }

  reconnect(i) {
    ip('link', 'set', this.hosts[i].outer, 'up');
  }

  /**
   * Limits what host `i` sends to `mbit` megabits a second (tc tbf). The
   * bucket holds 10 ms of sending, at least 64 kbit: a fast link's bucket
   * must take a whole segmentation-offload packet (64 KiB) and what one
   * timer tick lets through, or tbf shapes far below its rate.
   */
  limitRate(i, mbit) {
    const burst = `${Math.max(64, mbit * 10)}kbit`;
    execFileSync('ip', ['netns', 'exec', this.hosts[i].ns, 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root',
      'tbf', 'rate', `${mbit}mbit`, 'burst', burst, 'latency', '400ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Lifts {@link limitRate}'s limit from host `i`. */
  unlimitRate(i) {
    execFileSync('ip', ['netns', 'exec', this.hosts[i].ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Drops every UDP packet between hosts `i` and `j` (both directions). */
  blockUdp(i, j) {
    for (const [from, to] of [[i, j], [j, i]]) {
      iptables(this.hosts[from].ns, '-A', 'OUTPUT', '-p', 'udp', '-d', this.hosts[to].ip, '-j', 'DROP');
    }
  }

  destroy() {
    for (const host of this.hosts ?? []) {
      try { ip('netns', 'del', host.ns); } catch { /* already gone */ }
      rmSync(`/etc/netns/${host.ns}`, { recursive: true, force: true });
    }
    try { ip('link', 'del', this.bridge); } catch { /* already gone */ }
  }
}
