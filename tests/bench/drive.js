// `scripts/bench drive`: between two nodes on separate machines of a test
// LAN, in one run: the raw RTCDataChannel rate between the two browsers,
// then a large file on disk chosen in node1's drive page (hashed and coded
// in the page, verified and stored by the engine), then downloaded in
// node2's popup into a Chrome download (restored from both nodes'
// fragments, streamed to disk); and the peak memory of the engine and of
// the browser meanwhile. Writes bench/results/drive.json.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { LanMesh } from '../harness/lan-mesh.js';
import { waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MIB = Number(process.env.BENCH_DRIVE_MIB ?? 1024);
const RAW_MIB = Number(process.env.BENCH_RAW_MIB ?? 64);

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
    const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
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

const mesh = await LanMesh.start(2);
try {
  const [one, two] = mesh.nodes;
  const [popupOne] = mesh.popups;
  await waitFor('a direct link', async () =>
    (await popupOne.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' }))).peers.some((p) => p.link === 'webrtc'),
  { timeoutMs: 30_000, everyMs: 250 });

  const raw = await popupOne.evaluate((m) => chrome.runtime.sendMessage({ type: 'mesh.bench', ...m }),
    { peer: mesh.ids[1], bytes: RAW_MIB * 1024 * 1024, mode: 'raw' });
  if (raw.error) throw new Error(raw.error);
  console.log(`raw data channel: ${raw.mbps.toFixed(1)} Mbit/s`);

  const engines = new PeakSampler(await Promise.all([one, two].map(async (n) => (await n.status()).engine_pid)));
  const browsers = new PeakSampler([one.chromium.pid, two.chromium.pid]);

  // Both browsers run the transfers with DevTools detached: a connected
  // DevTools client records every WebSocket frame, which made the browser
  // process grow by the file's size and the upload three times slower.
  //
  // Upload from node1's drive page: a random file on disk in a file input
  // (so the page reads it from disk as a user's would), through the same
  // uploadFile the drop zone uses, timed in the page.
  const source = path.join(mesh.dir, 'bench.bin');
  const sourceHash = await writeRandomFile(source, MIB);
  const app = await one.openPage('app/app.html#drive');
  await app.evaluate(() => document.body.append(Object.assign(document.createElement('input'), { type: 'file', id: 'bench-input' })));
  await chooseFile(app, '#bench-input', source);
  await app.evaluate(() => setTimeout(async () => {
    const { uploadFile } = await import('../shared/drive-client.js');
    const started = performance.now();
    await uploadFile(document.getElementById('bench-input').files[0]);
    localStorage.benchUploadMs = String(performance.now() - started);
  }, 1000));
  await Promise.all([one, two].map((n) => n.detachDevTools()));
  const id = await waitFor('the file in node1\'s drive, then spread to node2', async () => {
    const stored = JSON.parse((await one.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === 'bench.bin');
    if (!stored) return false;
    const file = JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === 'bench.bin');
    return file?.health.state === 'full' && file.id;
  }, { timeoutMs: 1_800_000, everyMs: 500 });
  await one.attachDevTools();
  const uploadMs = Number(await waitFor('the page\'s upload time', () =>
    one.context.pages().find((p) => p.url().includes('app/app.html'))?.evaluate(() => localStorage.benchUploadMs)));
  await one.detachDevTools();
  console.log(`upload (page → engine, coded in the page): ${uploadMs.toFixed(0)} ms`);

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
    fs.existsSync(saved) && fs.statSync(saved).size === MIB * 1024 * 1024 && Date.now(), { timeoutMs: 1_800_000, everyMs: 100 });
  await two.attachDevTools();
  const downloadStart = Number(await two.context.pages().find((p) => p.url().includes('popup/popup.html')).evaluate(() => localStorage.benchDownloadStart));
  const downloadMs = finished - downloadStart;
  if (await hashFile(saved) !== sourceHash) throw new Error('the downloaded file differs from the uploaded one');
  await one.attachDevTools();

  const browserPeak = browsers.stop();
  const bytes = MIB * 1024 * 1024;
  const mbps = (ms) => (bytes * 8) / (ms * 1000);
  const results = {
    file_mib: MIB,
    raw_datachannel_mbps: round1(raw.mbps),
    upload_mbps: round1(mbps(uploadMs)),
    download_mbps: round1(mbps(downloadMs)),
    upload_vs_raw: round2(mbps(uploadMs) / raw.mbps),
    download_vs_raw: round2(mbps(downloadMs) / raw.mbps),
    peak_rss_engine_mb: engines.stop().mb,
    peak_rss_browser_mb: browserPeak.mb,
    peak_rss_browser_process: browserPeak.kind,
    targets: { upload_vs_raw: 0.9, download_vs_raw: 0.9, peak_rss_mb: 300 },
    unit: 'Mbit/s',
    notes: 'upload = a file on disk chosen in the page, hashed and coded in the page, verified and stored by the engine (spreading continues after); download = restored from both nodes\' fragments into a Chrome download on disk, bytes checked',
    measured_at: new Date().toISOString(),
  };
  writeResults('drive', results);
} finally {
  await mesh.stop();
}
