// A mail server and N nodes, all under one temp directory.

import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { MailServer } from './mail-server.js';
import { MeshNode } from './node.js';
import { EXTENSION_ID } from './paths.js';
import { reapStragglers } from './processes.js';
import { tempDir } from './util.js';

export class Cluster {
  /** Starts the mail server (with one owner mailbox) and `nodes` nodes. */
  static async up({ nodes = 3 } = {}) {
    const cluster = new Cluster();
    cluster.root = await tempDir('mailmesh-cluster-');
    // Dovecot and Postfix run as their own users and must reach their files.
    await fs.chmod(cluster.root, 0o755);
    try {
      cluster.mail = await MailServer.start(path.join(cluster.root, 'mail'));
      cluster.ownerPassword = crypto.randomBytes(9).toString('base64url');
      cluster.owner = await cluster.mail.addUser('owner', cluster.ownerPassword);
      cluster.nodes = await Promise.all(Array.from({ length: nodes }, (_, i) =>
        MeshNode.start({ name: `node${i + 1}`, dir: path.join(cluster.root, `node${i + 1}`) })));
    } catch (e) {
      await cluster.down();
      throw e;
    }
    return cluster;
  }

  describe() {
    return {
      root: this.root,
      extension_id: EXTENSION_ID,
      mail: this.mail?.describe(),
      nodes: (this.nodes ?? []).map((n) => ({ name: n.name, home: n.home, profile: n.profile, cdp: n.cdpEndpoint })),
    };
  }

  /** Stops everything; returns processes that had to be killed. */
  async down() {
    const killed = [];
    for (const node of this.nodes ?? []) killed.push(...await node.stop());
    if (this.mail) {
      await this.mail.destroy();
      this.mail = null;
    }
    if (this.root) {
      killed.push(...await reapStragglers(this.root));
      await fs.rm(this.root, { recursive: true, force: true });
    }
    return killed;
  }
}
