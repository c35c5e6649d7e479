// `scripts/bench import`: the first import of a mailbox of a realistic mix
// (most mails text only, some with office-sized attachments, a few with
// large ones) against what an owner would use to copy a mailbox to disk:
// mbsync (isync) pulling the same mailbox from the same Dovecot into a
// Maildir, side by side in one run. Then three nodes of one owner import a
// smaller mailbox between them: what Dovecot served over the mailbox's
// size. Writes bench/results/import.json. BENCH_PERF=FILE records a CPU
// profile of the engine during the import, BENCH_KEEP_LOG=FILE keeps its log.

import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Control } from '../harness/control.js';
import { LanMesh } from '../harness/lan-mesh.js';
import { appendMessages } from '../harness/mail-client.js';
import { MailServer } from '../harness/mail-server.js';
import { MeshNode } from '../harness/node.js';
import { OwnerNetwork } from '../harness/owner.js';
import { tempDir, waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MESSAGES = Number(process.env.BENCH_IMPORT_MESSAGES ?? 1200);
/** Rounds of mbsync and of the import, alternating; the medians are
 * reported (one run on two cores varies by a quarter). */
const ROUNDS = Number(process.env.BENCH_IMPORT_ROUNDS ?? 5);
const THREE_NODE_MESSAGES = Number(process.env.BENCH_IMPORT_THREE_NODE_MESSAGES ?? 200);

/**
 * A mailbox of `count` mails: 6 in 10 text only (10 kB), 3 in 10 with an
 * attachment of 100–300 kB, 1 in 10 with one of 1–2 MB (about 300 kB a
 * mail on average, as in the 1,200 mails of 345 MiB). Returns the
 * raw mails and how many attachments they hold.
 */
function mixedMailbox(count) {
  const mails = [];
  let attachments = 0;
  for (let i = 0; i < count; i++) {
    const kind = i % 10;
    const size = kind < 6 ? 0 : kind < 9 ? 100_000 + (i * 7919) % 200_000 : 1_000_000 + (i * 104_729) % 1_000_000;
    const head = [`From: sender${i % 37}@example.org`, 'To: owner@mailmesh.test', `Subject: mail ${i}`,
      `Message-ID: <mail-${i}@example.org>`, `Date: ${new Date(Date.UTC(2020, 0, 1) + i * 3_600_000).toUTCString()}`,
      'MIME-Version: 1.0'];
    const text = `Hello,\r\n\r\n${'This is the text of a mail, as people write them. '.repeat(200)}\r\n`;
    if (size === 0) {
      mails.push([...head, 'Content-Type: text/plain; charset=utf-8', '', text].join('\r\n'));
      continue;
    }
    attachments++;
    const b64 = crypto.randomBytes(size).toString('base64').replace(/.{76}/g, '$&\r\n');
    mails.push([...head, 'Content-Type: multipart/mixed; boundary="b"', '', '--b',
      'Content-Type: text/plain; charset=utf-8', '', text, '--b', 'Content-Type: application/pdf',
      `Content-Disposition: attachment; filename="document-${i}.pdf"`, 'Content-Transfer-Encoding: base64', '',
      b64, '--b--', ''].join('\r\n'));
  }
  return { mails, attachments, bytes: mails.reduce((n, m) => n + Buffer.byteLength(m), 0) };
}

/** Seconds `mbsync` takes to pull INBOX into a fresh Maildir. */
async function mbsync(dir, mail, owner, password) {
  const maildir = await fs.mkdtemp(path.join(dir, 'maildir-'));
  const config = path.join(maildir, 'mbsyncrc');
  await fs.writeFile(config, [
    'IMAPAccount bench', 'Host 127.0.0.1', `Port ${mail.imapPort}`, `User ${owner}`, `Pass ${password}`,
    'SSLType None', 'AuthMechs LOGIN', '',
    'IMAPStore remote', 'Account bench', '',
    'MaildirStore local', `Path ${maildir}/`, `Inbox ${maildir}/INBOX`, '',
    'Channel bench', 'Far :remote:', 'Near :local:', 'Patterns INBOX', 'Create Near', 'Sync Pull',
    `SyncState ${maildir}/state/`, ''].join('\n'));
  await fs.mkdir(path.join(maildir, 'state'));
  const start = process.hrtime.bigint();
  execFileSync('mbsync', ['-q', '-c', config, '-a'], { stdio: ['ignore', 'ignore', 'inherit'] });
  // Kept until the end: see `oneNode`.
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** The peak resident memory (VmHWM, MB) of a process. */
function peakMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/**
 * Starts the engine and times its first import until every one of
 * `files` files is recorded; the engine's peak memory meanwhile.
 */
async function timeImport(node, files) {
  const start = process.hrtime.bigint();
  await node.startEngine();
  const control = await Control.connect(node.home);
  // BENCH_PERF=FILE: a CPU profile of the engine during the import.
  const perf = process.env.BENCH_PERF && (await import('node:child_process')).spawn('perf',
    ['record', '-F', '2000', '-g', '-o', process.env.BENCH_PERF, '-p', String((await control.request({ type: 'status' })).engine_pid)],
    { stdio: 'ignore' });
  // Only status while it imports (a file list costs the engine a look at
  // every fragment).
  await waitFor('the first import done', async () => {
    const status = await control.request({ type: 'status' });
    if (status.import?.state !== 'idle' || status.import.messages_total !== 0) return false;
    const { files: found } = await control.request({ type: 'files_list' });
    return found.length >= files;
  }, { timeoutMs: 1_800_000, everyMs: 100 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((r) => perf.on('exit', r));
  }
  const peak = peakMb((await control.request({ type: 'status' })).engine_pid);
  control.close();
  return { seconds, peak };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function oneNode(dir) {
  const mail = await MailServer.start(path.join(dir, 'mail'));
  const node = MeshNode.prepare({ name: 'laptop', dir: path.join(dir, 'laptop') });
  try {
    const password = crypto.randomBytes(9).toString('base64url');
    const owner = await mail.addUser('owner', password);
    const network = await OwnerNetwork.create(mail, owner, password, dir);
    await network.found(node);
    await node.mailmesh('stop');

    const mailbox = mixedMailbox(MESSAGES);
    console.log(`appending ${MESSAGES} mails, ${round1(mailbox.bytes / 2 ** 20)} MiB`);
    await appendMessages(mail.imapPort, owner, password, mailbox.mails);
    // mbsync once to warm Dovecot's caches, then rounds of each side by
    // side; every import starts from an empty drive.
    await mbsync(dir, mail, owner, password);
    const mbsyncRuns = [];
    const importRuns = [];
    let peak = 0;
    for (let round = 0; round < ROUNDS; round++) {
      mbsyncRuns.push(await mbsync(dir, mail, owner, password));
      // Set aside, not deleted: without a journal (as here) ext4 will not
      // reuse an inode freed in the last 30 s and scans past each of them,
      // so deleting the last round's thousands of files just before the
      // next one would time the allocator, not the import. Deleted at the end.
      await fs.rename(path.join(node.home, 'drive'), path.join(dir, `drive-${round}`)).catch((e) => {
        if (e.code !== 'ENOENT') throw e;
      });
      const run = await timeImport(node, mailbox.attachments);
      importRuns.push(run.seconds);
      peak = Math.max(peak, run.peak);
      if (process.env.BENCH_KEEP_LOG) await fs.copyFile(path.join(node.home, 'logs/engine.log'), process.env.BENCH_KEEP_LOG);
      await node.mailmesh('stop');
    }
    console.log({ mbsync_runs_s: mbsyncRuns.map(round2), import_runs_s: importRuns.map(round2) });
    const mbsyncS = median(mbsyncRuns);
    const importS = median(importRuns);
    return {
      messages: MESSAGES,
      mailbox_mib: round1(mailbox.bytes / 2 ** 20),
      rounds: ROUNDS,
      mbsync_s: round2(mbsyncS),
      import_s: round2(importS),
      import_vs_mbsync: round2(mbsyncS / importS),
      peak_rss_engine_mb: Math.round(peak),
    };
  } finally {
    await node.stop();
    await mail.destroy();
  }
}

async function threeNodes() {
  const mesh = await LanMesh.start(3, 3, { browsers: false });
  try {
    await waitFor('every engine linked to both others', async () => {
      const s = await Promise.all(mesh.nodes.map((n) => n.status()));
      return s.every((x) => x.peers.filter((p) => p.member && p.online).length === 2);
    }, { timeoutMs: 60_000, everyMs: 250 });
    const mailbox = mixedMailbox(THREE_NODE_MESSAGES);
    await appendMessages(mesh.mail.imapPort, mesh.owner, mesh.password, mailbox.mails);
    await waitFor('every file on every node', async () => (await Promise.all(mesh.nodes.map(async (n) =>
      JSON.parse((await n.mailmesh('files', 'list', '--json')).stdout).length))).every((n) => n >= mailbox.attachments),
    { timeoutMs: 1_800_000, everyMs: 1000 });
    for (const node of mesh.nodes) await node.stop();
    const sessions = await waitFor('every IMAP session logged out', async () => {
      const all = await mesh.mail.imapSessions(mesh.owner);
      return all.every((s) => s.end !== null) && all;
    }, { timeoutMs: 60_000, everyMs: 250 }).catch(async (e) => {
      const open = (await mesh.mail.imapSessions(mesh.owner)).filter((s) => s.end === null);
      throw new Error(`${e.message}: ${JSON.stringify(open)}\n${await mesh.mail.logs()}`);
    });
    const served = sessions.reduce((n, s) => n + s.out, 0);
    return { three_node_messages: THREE_NODE_MESSAGES, imap_bytes_vs_mailbox: round2(served / mailbox.bytes) };
  } finally {
    await mesh.stop();
  }
}

try {
  execFileSync('mbsync', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('mbsync is not installed: apt-get install isync');
  process.exit(2);
}
const dir = await tempDir('mailmesh-bench-import-');
await fs.chmod(dir, 0o755);
try {
  const one = MESSAGES > 0 ? await oneNode(dir) : {};
  console.log(one);
  const three = await threeNodes();
  writeResults('import', { ...one, ...three });
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}
