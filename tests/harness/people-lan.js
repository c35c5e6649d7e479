// Several people on one test LAN: each person has a mailbox on the same
// mail server and one or more nodes (the first founds their network, the
// others join it), every node on its own machine. `verify` runs the real
// email challenge between two people's nodes.

import fs from 'node:fs/promises';
import path from 'node:path';
import { Lan } from './lan.js';
import { MailServer } from './mail-server.js';
import { MeshNode } from './node.js';
import { OwnerNetwork } from './owner.js';
import { processesUsing } from './processes.js';
import { tempDir, waitFor } from './util.js';

export class PeopleLan {
  /**
   * @param {Record<string, number>} people name → how many nodes, e.g.
   *   `{alice: 2, bob: 1}`; nodes are named `alice1`, `alice2`, `bob1`.
   */
  static async start(people) {
    const lan = new PeopleLan();
    lan.dir = await tempDir('mailmesh-people-');
    await fs.chmod(lan.dir, 0o755);
    const total = Object.values(people).reduce((a, b) => a + b, 0);
    lan.lan = Lan.create(total);
    /** @type {Record<string, MeshNode>} */
    lan.nodes = {};
    /** @type {Record<string, OwnerNetwork>} */
    lan.networks = {};
    /** @type {Record<string, string>} name → address */
    lan.email = {};
    try {
      lan.mail = await MailServer.start(path.join(lan.dir, 'mail'), { host: lan.lan.gateway });
      let host = 0;
      for (const [name, count] of Object.entries(people)) {
        for (let i = 1; i <= count; i++) {
          const node = `${name}${i}`;
          lan.nodes[node] = MeshNode.prepare({ name: node, dir: path.join(lan.dir, node), lan: lan.lan, host: host++ });
        }
        const password = `${name}-pw`;
        lan.networks[name] = await OwnerNetwork.create(lan.mail, await lan.mail.addUser(name, password), password, lan.dir);
        lan.email[name] = lan.networks[name].owner;
      }
      // Dovecot rereads its user file only when it looks changed, which a
      // second write within the same second may not.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      for (const [name, count] of Object.entries(people)) {
        await lan.networks[name].found(lan.nodes[`${name}1`]);
        for (let i = 2; i <= count; i++) await lan.networks[name].join(lan.nodes[`${name}${i}`], lan.nodes[`${name}1`]);
      }
    } catch (e) {
      await lan.stop();
      throw e;
    }
    return lan;
  }

  /** The person `node` sees under `email`, from `mailmesh people list`. */
  static async person(node, email) {
    const people = JSON.parse((await node.mailmesh('people', 'list', '--json')).stdout);
    return people.find((p) => p.email === email);
  }

  /**
   * Has `node` verify `name` by email challenge, once it has seen all of
   * their `devices` nodes, and waits until it is pinned.
   */
  async verify(node, name, devices = 1) {
    const email = this.email[name];
    await waitFor(`${node.name} to see ${devices} device(s) of ${name}`, async () =>
      (await PeopleLan.person(node, email))?.devices.length === devices, { timeoutMs: 30_000, everyMs: 500 });
    // Another device of the same owner may have verified them already.
    if ((await PeopleLan.person(node, email)).state === 'verified') return;
    await node.mailmesh('people', 'verify', email);
    await waitFor(`${name} verified on ${node.name}`, async () =>
      (await PeopleLan.person(node, email))?.state === 'verified', { timeoutMs: 60_000, everyMs: 500 });
  }

  /** Stops everything; returns what was still running under the directory. */
  async stop() {
    for (const node of Object.values(this.nodes ?? {})) await node.stop();
    await this.mail?.destroy();
    this.lan?.destroy();
    const left = processesUsing(this.dir);
    await fs.rm(this.dir, { recursive: true, force: true });
    return left;
  }
}
