// `scripts/bench drive`: between two nodes on separate machines of a test
// LAN, in one run: the raw RTCDataChannel rate between the two browsers,
// then a large file uploaded in node1's drive page (until it is encoded
// and spread), then downloaded in node2's popup; and the peak memory of
// the engine and of the browser meanwhile. Writes bench/results/drive.json.

import fs from 'node:fs';
import { LanMesh } from '../harness/lan-mesh.js';
import { waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MIB = Number(process.env.BENCH_DRIVE_MIB ?? 1024);
const RAW_MIB = Number(process.env.BENCH_RAW_MIB ?? 64);

/** Peak resident memory (VmHWM, MB) of a process. */
function peakOf(pid) {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return hwm ? Number(hwm[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The largest peak among `root` and all its descendants (the browser's processes). */
function peakOfTree(root) {
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
  return Math.round(Math.max(0, ...[...parent.keys()].filter(inTree).map(peakOf)));
}

const mesh = await LanMesh.start(2);
try {
  const [one, two] = mesh.nodes;
  const [popupOne, popupTwo] = mesh.popups;
  await waitFor('a direct link', async () =>
    (await popupOne.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' }))).peers.some((p) => p.link === 'webrtc'),
  { timeoutMs: 30_000, everyMs: 250 });

  const raw = await popupOne.evaluate((m) => chrome.runtime.sendMessage({ type: 'mesh.bench', ...m }),
    { peer: mesh.ids[1], bytes: RAW_MIB * 1024 * 1024, mode: 'raw' });
  if (raw.error) throw new Error(raw.error);
  console.log(`raw data channel: ${raw.mbps.toFixed(1)} Mbit/s`);

  // Upload from node1's drive page: a file built in the page from random
  // 4 MiB parts, timed until the engine has added it and spread it.
  const app = await one.openPage('app/app.html#drive');
  const uploadMs = await app.evaluate(async (mib) => {
    const parts = [];
    for (let i = 0; i < mib / 4; i++) {
      const part = new Uint8Array(4 * 1024 * 1024);
      for (let o = 0; o < part.length; o += 65536) crypto.getRandomValues(part.subarray(o, o + 65536));
      parts.push(new Blob([part]));
    }
    const file = new File(parts, 'bench.bin');
    const { uploadFile } = await import('../shared/drive-client.js');
    const started = performance.now();
    await uploadFile(file);
    return performance.now() - started;
  }, MIB);
  const id = await waitFor('the file spread to node2', async () => {
    const files = JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout);
    const file = files.find((f) => f.name === 'bench.bin');
    return file?.health.state === 'full' && file.id;
  }, { timeoutMs: 600_000, everyMs: 500 });
  console.log(`upload (page → engine, encoded): ${uploadMs.toFixed(0)} ms`);

  // Download in node2's popup, from both nodes' fragments.
  const downloadMs = await popupTwo.evaluate(async (fileId) => {
    const { downloadFile, listFiles } = await import('../shared/drive-client.js');
    const file = (await listFiles()).find((f) => f.id === fileId);
    URL.createObjectURL = () => 'blob:bench';
    const started = performance.now();
    await downloadFile(file);
    return performance.now() - started;
  }, id);

  const bytes = MIB * 1024 * 1024;
  const mbps = (ms) => (bytes * 8) / (ms * 1000);
  const results = {
    file_mib: MIB,
    raw_datachannel_mbps: round1(raw.mbps),
    upload_mbps: round1(mbps(uploadMs)),
    download_mbps: round1(mbps(downloadMs)),
    upload_vs_raw: round2(mbps(uploadMs) / raw.mbps),
    download_vs_raw: round2(mbps(downloadMs) / raw.mbps),
    peak_rss_engine_mb: Math.round(Math.max(...(await Promise.all([one, two].map(async (n) => peakOf((await n.status()).engine_pid)))))),
    peak_rss_browser_mb: Math.max(peakOfTree(one.chromium.pid), peakOfTree(two.chromium.pid)),
    targets: { upload_vs_raw: 0.9, download_vs_raw: 0.9, peak_rss_mb: 300 },
    unit: 'Mbit/s',
    notes: 'upload = page to engine, encoded and stored (spreading continues after); download = fragments from both nodes to the page',
    measured_at: new Date().toISOString(),
  };
  writeResults('drive', results);
} finally {
  await mesh.stop();
}
