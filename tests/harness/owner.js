// The owner's side of enrolling test nodes through the CLI and the real
// mailbox: the first node is confirmed with the code from its confirmation
// mail, later ones join and are approved with the code from the approval
// mail, exactly as a person would do it.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fetchInboxAndFolder, unfoldQuotedPrintable } from './mail-client.js';
import { MailServer } from './mail-server.js';
import { MeshNode } from './node.js';
import { processesUsing } from './processes.js';
import { tempDir, waitFor } from './util.js';

const CODE = /^ {4}([a-z0-9]{4}-[a-z0-9]{4})$/m;

export class OwnerNetwork {
  /**
   * @param {import('./mail-server.js').MailServer} mail
   * @param {string} owner the owner's address
   * @param {string} password
   * @param {string} dir where to keep the password file
   */
  static async create(mail, owner, password, dir) {
    const network = new OwnerNetwork(mail, owner, password);
    network.passwordFile = path.join(dir, `${owner}.password`);
    await fs.writeFile(network.passwordFile, password, { mode: 0o600 });
    return network;
  }

  constructor(mail, owner, password) {
    this.mail = mail;
    this.owner = owner;
    this.password = password;
  }

  /** Waits for a mail whose subject contains `subject`; returns its text. */
  /** How many mails with this subject the owner's inbox and mailmesh folder hold now. */
  async countMails(subject) {
    return (await fetchInboxAndFolder(this.mail.imapPort, this.owner, this.password))
      .map(unfoldQuotedPrintable)
      .filter((m) => m.includes(`Subject: ${subject}`)).length;
  }

  mailWith(subject) {
    return waitFor(`a mail "${subject}"`, async () =>
      (await fetchInboxAndFolder(this.mail.imapPort, this.owner, this.password))
        .map(unfoldQuotedPrintable)
        .find((m) => m.includes(`Subject: ${subject}`)),
    { timeoutMs: 30_000, everyMs: 250 });
  }

  /** `mailmesh init` for a node, against this mail server. */
  init(node) {
    const { host, smtpPort, imapPort } = this.mail;
    return node.mailmesh('init', '--email', this.owner, '--imap-host', host, '--imap-port', String(imapPort),
      '--imap-security', 'plain', '--smtp-host', host, '--smtp-port', String(smtpPort), '--smtp-security', 'plain',
      '--password-file', this.passwordFile, '--device-name', node.name);
  }

  /** Starts `node`'s engine and makes it the network's first node. */
  async found(node) {
    await node.startEngine();
    await this.init(node);
    const code = CODE.exec(await this.mailWith(`Confirm mailmesh on ${node.name}`))[1];
    await node.mailmesh('confirm', code);
    await this.mailWith('mailmesh roster');
  }

  /**
   * Starts `node`'s engine and has it join: the owner approves it on
   * `member` (which shows the request), then types the mailed code on it.
   */
  async join(node, member) {
    await node.startEngine();
    const { stdout } = await this.init(node);
    if (!/asked to join/.test(stdout)) throw new Error(`${node.name} did not ask to join: ${stdout}`);
    const { node_id: id } = await node.status();
    await waitFor(`${node.name}'s request on ${member.name}`, async () =>
      (await member.status()).join_requests.some((r) => r.node_id === id), { timeoutMs: 30_000 });
    await member.mailmesh('nodes', 'approve', id);
    const code = CODE.exec(await this.mailWith(`Approve ${node.name} for mailmesh`))[1];
    await node.mailmesh('confirm', code);
    await waitFor(`${node.name} to be welcomed`, async () => (await node.status()).enrolled, { timeoutMs: 30_000 });
  }
}

/**
 * A mail server with one owner mailbox and one headless node that founded
 * the owner's network, everything under a temp directory the test's end
 * removes (asserting nothing is left running). `mailOptions` go to
 * `MailServer.start`.
 * @returns {Promise<{dir: string, mail: MailServer, node: MeshNode, owner: string, password: string, network: OwnerNetwork}>}
 */
export async function foundedNode(t, prefix, mailOptions = {}) {
  const dir = await tempDir(prefix);
  await fs.chmod(dir, 0o755);
  const mail = await MailServer.start(path.join(dir, 'mail'), mailOptions);
  const node = MeshNode.prepare({ name: 'laptop', dir: path.join(dir, 'laptop') });
  t.after(async () => {
    await node.stop();
    await mail.destroy();
    assert.deepEqual(processesUsing(dir), [], 'nothing left running');
    await fs.rm(dir, { recursive: true, force: true });
  });
  const password = crypto.randomBytes(9).toString('base64url');
  const owner = await mail.addUser('owner', password);
  const network = await OwnerNetwork.create(mail, owner, password, dir);
  await network.found(node);
  return { dir, mail, node, owner, password, network };
}
