// A ready mesh for tests and benchmarks: `count` nodes of one owner, each
// on its own machine of a test LAN (lan.js), enrolled through a real mail
// server, browsers running and popups open.

import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Lan } from './lan.js';
import { MailServer } from './mail-server.js';
import { MeshNode } from './node.js';
import { OwnerNetwork } from './owner.js';
import { processesUsing } from './processes.js';
import { tempDir } from './util.js';

export class LanMesh {
  /**
   * @param {number} count nodes to enroll
   * @param {number} hosts machines on the LAN (the rest stay free for others)
   * @param {{browsers?: boolean}} options without browsers, only engines run
   */
  static async start(count, hosts = count, { browsers = true } = {}) {
    const mesh = new LanMesh();
    mesh.dir = await tempDir('mailmesh-mesh-');
    await fs.chmod(mesh.dir, 0o755);
    mesh.lan = Lan.create(hosts);
    mesh.nodes = Array.from({ length: count }, (_, i) =>
      MeshNode.prepare({ name: `node${i + 1}`, dir: path.join(mesh.dir, `node${i + 1}`), lan: mesh.lan, host: i }));
    try {
      mesh.mail = await MailServer.start(path.join(mesh.dir, 'mail'), { host: mesh.lan.gateway });
      const password = crypto.randomBytes(9).toString('base64url');
      const network = await OwnerNetwork.create(mesh.mail, await mesh.mail.addUser('owner', password), password, mesh.dir);
      await network.found(mesh.nodes[0]);
      for (const node of mesh.nodes.slice(1)) await network.join(node, mesh.nodes[0]);
      if (browsers) {
        await Promise.all(mesh.nodes.map((n) => n.startBrowser()));
        mesh.popups = await Promise.all(mesh.nodes.map((n) => n.openPage('popup/popup.html')));
      }
      mesh.ids = await Promise.all(mesh.nodes.map(async (n) => (await n.status()).node_id));
      mesh.owner = network.owner;
      mesh.password = password;
    } catch (e) {
      await mesh.stop();
      throw e;
    }
    return mesh;
  }

  /** Stops everything; returns what was still running under the directory. */
  async stop() {
    for (const n of this.nodes ?? []) await n.stop();
    await this.mail?.destroy();
    this.lan?.destroy();
    const left = processesUsing(this.dir);
    await fs.rm(this.dir, { recursive: true, force: true });
    return left;
  }
}
