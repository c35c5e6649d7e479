// `scripts/bench drive`: between two nodes on separate machines of a test
// LAN whose links are shaped to 1 Gbit/s, in one run: the wire itself (a
// plain TCP copy), Syncthing bringing the same file from one machine to
// the other, and the raw RTCDataChannel between the two browsers; then
// mailmesh:
//   - a large file on disk chosen in node1's drive page (read once by the
//     page; its bytes sealed, coded, stored and placed by the engine),
//     timed by the page until its upload is done, which is once node2
//     holds its share of the fragments (full redundancy: either machine
//     can be lost; checked after);
//   - the same file downloaded in node2's popup into a Chrome download
//     (restored from both nodes' fragments, streamed to disk);
//   - another file by the CLI: `files add` on node1 until node2 holds its
//     share, `files get` on node2;
// the peak memory of the engines and of every browser process, and the
// CPU time each process spent on each contender (where the time goes).
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
const ROUNDS = Number(process.env.BENCH_DRIVE_ROUNDS ?? 3);

/**
 * Resident memory of a process (MB): all of it (VmRSS), and its own
 * (RssAnon + RssShmem: what it allocated, without the pages of the program
 * and libraries it maps, which every Chromium process shares: about 170 MB
 * of an idle browser process's 220 here).
 */
function memoryOf(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024;
    return { rss: field('VmRSS'), own: field('RssAnon') + field('RssShmem') };
  } catch {
    return { rss: 0, own: 0 };
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
 * The largest resident sizes (all, and its own) any one process of the
 * given trees reached, sampled every 250 ms.
 */
class PeakSampler {
  constructor(roots) {
    this.peak = { rss: 0, own: 0, kind: '' };
    let pids = [];
    let ticks = 0;
    const sample = () => {
      // Walking /proc is the costly part: find the processes every 2 s.
      if (ticks++ % 8 === 0) pids = roots.flatMap(treeOf);
      for (const pid of pids) {
        const { rss, own } = memoryOf(pid);
        if (rss > this.peak.rss) this.peak.rss = Math.round(rss);
        if (own > this.peak.own) Object.assign(this.peak, { own: Math.round(own), kind: kindOf(pid) });
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

/** CPU seconds a process has used (user + system). */
function cpuOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks
  } catch {
    return 0;
  }
}

/**
 * The CPU seconds the processes of some named trees spend between
 * `start()` and `stop()`, by tree and process kind ("node1 renderer
 * (extension)"; an engine's own tree is "node1 engine browser", as it has
 * no Chromium --type): the per-process profile of one contender.
 */
class CpuMeter {
  constructor(trees) {
    this.trees = trees;
  }

  #snapshot() {
    const cpu = new Map();
    for (const [name, root] of Object.entries(this.trees)) {
      for (const pid of treeOf(root)) {
        // A process in two trees (an engine Chrome started) counts in the first.
        if (!cpu.has(pid)) cpu.set(pid, { label: `${name} ${kindOf(pid)}`, seconds: cpuOf(pid) });
      }
    }
    return cpu;
  }

  start() {
    this.before = this.#snapshot();
  }

  /** @returns {Record<string, number>} seconds by process, largest first */
  stop() {
    // By process: one that ended meanwhile is missed, one that began counts whole.
    const spent = {};
    for (const [pid, { label, seconds }] of this.#snapshot()) {
      spent[label] = (spent[label] ?? 0) + seconds - (this.before.get(pid)?.seconds ?? 0);
    }
    return Object.fromEntries(Object.entries(spent).filter(([, s]) => s >= 0.05).map(([l, s]) => [l, round2(s)])
      .sort((a, b) => b[1] - a[1]));
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
  // Once a second: counting thousands of files takes CPU from the upload
  // it watches (on the same two cores), and the times come from the page
  // and the CLI themselves, which end only once the other node holds its
  // share; this only checks that they did.
  return waitFor('the fragments spread to the other node', () => {
    const received = fragmentsHeld(receiver) - before.receiver;
    const kept = fragmentsHeld(sender) - before.sender;
    return received >= fragments / 2 && kept <= fragments / 2 && Date.now();
  }, { timeoutMs: 1_800_000, everyMs: 1000 });
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
  const raw = await popupOne.evaluate((m) => chrome.runtime.sendMessage({ type: 'mesh.bench', ...m }),
    { peer: mesh.ids[1], bytes: RAW_MIB * 1024 * 1024, mode: 'raw' });
  if (raw.error) throw new Error(raw.error);
  console.log(`raw data channel: ${raw.mbps.toFixed(1)} Mbit/s`);
  const syncthingWhyNot = syncthingMissing();
  const enginePids = await Promise.all([one, two].map(async (n) => (await n.status()).engine_pid));
  const engines = new PeakSampler(enginePids);
  const browsers = new PeakSampler([one.chromium.pid, two.chromium.pid]);
  const cpu = new CpuMeter({
    'node1 engine': enginePids[0], 'node2 engine': enginePids[1],
    node1: one.chromium.pid, node2: two.chromium.pid,
  });
  const profile = {};
  const app = await one.openPage('app/app.html#drive');
  await app.evaluate(() => document.body.append(Object.assign(document.createElement('input'), { type: 'file', id: 'bench-input' })));
  const appOf = (node) => node.context.pages().find((p) => p.url().includes('app/app.html'));
  const popupOf = (node) => node.context.pages().find((p) => p.url().includes('popup/popup.html'));
  const totalFragments = (Math.ceil(bytes / (1024 * 1024)) || 1) * 6;
  const held = () => ({ sender: fragmentsHeld(one), receiver: fragmentsHeld(two) });

  // Each round runs every contender once on new random bytes, one after
  // the other; the results are each one's median (one run on two shared
  // cores varies by a tenth).
  const rounds = [];
  for (let round = 0; round < ROUNDS; round++) {
    const times = {};
    times.tcp = await rawTcpMbps(mesh.lan, one.host, two.host, bytes);
    const source = path.join(mesh.dir, `bench-${round}.bin`);
    const sourceHash = await writeRandomFile(source, MIB);
    if (!syncthingWhyNot) {
      syncthing = await SyncthingPair.start(mesh.lan, one.host, two.host, path.join(mesh.dir, `syncthing-${round}`));
      const meter = new CpuMeter(Object.fromEntries(syncthing.processes.map((p, i) => [`syncthing${i + 1}`, p.pid])));
      meter.start();
      times.syncthing = await syncthing.transfer(source);
      profile.syncthing = meter.stop();
      syncthing.stop();
      syncthing.removeFiles();
      syncthing = null;
    }

    // Upload from node1's drive page: the file on disk in a file input (so
    // the page reads it from disk as a user's would), through the same
    // uploadFile the drop zone uses; timed by the page, from its start
    // until uploadFile resolves, which it does once node2 holds its share
    // (checked after). Both browsers run the transfers with DevTools
    // detached: a connected DevTools client records every WebSocket frame,
    // which made the browser process grow by the file's size and the
    // upload three times slower.
    if (!one.context) await one.attachDevTools();
    await chooseFile(appOf(one), '#bench-input', source);
    const before = held();
    cpu.start();
    await appOf(one).evaluate(() => setTimeout(async () => {
      const { uploadFile } = await import('../shared/drive-client.js');
      const started = performance.now();
      localStorage.benchUploadStart = String(Date.now());
      await uploadFile(document.getElementById('bench-input').files[0]);
      localStorage.benchUploadMs = String(performance.now() - started);
    }, 1000));
    await Promise.all([one, two].map((n) => n.detachDevTools()));
    await whenSpread(one, two, totalFragments, before);
    profile.upload = cpu.stop();
    await one.attachDevTools();
    const appPage = appOf(one);
    times.upload = Number(await waitFor('the page\'s upload time', () => appPage?.evaluate(() => localStorage.benchUploadMs)));
    await appPage.evaluate(() => localStorage.removeItem('benchUploadMs'));
    const name = path.basename(source);
    const id = JSON.parse((await two.mailmesh('files', 'list', '--json')).stdout).find((f) => f.name === name).id;
    await one.detachDevTools();

    // Download in node2's popup into a Chrome download, timed from the
    // click until the whole file is in the downloads folder.
    if (!two.context) await two.attachDevTools();
    cpu.start();
    await popupOf(two).evaluate((fileId) => setTimeout(async () => {
      const { downloadFile, listFiles } = await import('../shared/drive-client.js');
      const file = (await listFiles()).find((f) => f.id === fileId);
      localStorage.benchDownloadStart = String(Date.now());
      await downloadFile(file);
    }, 1000), id);
    await two.detachDevTools();
    const saved = path.join(two.downloads, name);
    const finished = await waitFor('the download in node2\'s downloads folder', () =>
      fs.existsSync(saved) && fs.statSync(saved).size === bytes && Date.now(), { timeoutMs: 1_800_000, everyMs: 100 });
    profile.download = cpu.stop();
    await two.attachDevTools();
    times.download = finished - Number(await popupOf(two).evaluate(() => localStorage.benchDownloadStart));
    if (await hashFile(saved) !== sourceHash) throw new Error('the downloaded file differs from the uploaded one');
    fs.rmSync(saved);

    // The CLI: another file (new bytes, or it would deduplicate).
    const cliSource = path.join(mesh.dir, `cli-${round}.bin`);
    const cliHash = await writeRandomFile(cliSource, MIB);
    const cliBefore = held();
    cpu.start();
    const cliStarted = Date.now();
    const { stdout: addOut } = await one.mailmesh('files', 'add', cliSource);
    times.cliAdd = Date.now() - cliStarted; // `files add` ends once node2 holds its share
    profile.cli_add = cpu.stop();
    const addedId = /^added (\S+)/.exec(addOut)?.[1];
    if (!addedId) throw new Error(`files add printed: ${addOut}`);
    await whenSpread(one, two, totalFragments, cliBefore);
    const cliOut = path.join(mesh.dir, 'cli-restored.bin');
    const getStarted = Date.now();
    await two.mailmesh('files', 'get', addedId, '-o', cliOut);
    times.cliGet = Date.now() - getStarted;
    if (await hashFile(cliOut) !== cliHash) throw new Error('the file the CLI got differs from the one it added');
    fs.rmSync(cliOut);
    console.log(`round ${round + 1}:`, JSON.stringify(times));
    rounds.push(times);
  }
  if (!one.context) await one.attachDevTools();
  const median = (key) => {
    const sorted = rounds.map((r) => r[key]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  const tcpMbps = median('tcp');
  const syncthingMs = syncthingWhyNot ? null : median('syncthing');
  const [uploadMs, downloadMs, cliAddMs, cliGetMs] = ['upload', 'download', 'cliAdd', 'cliGet'].map(median);
  const browserPeak = browsers.stop();
  const enginePeak = engines.stop();
  const results = {
    file_mib: MIB,
    rounds: ROUNDS,
    link_mbit: LINK_MBIT,
    raw_tcp_mbps: round1(tcpMbps),
    syncthing_mbps: syncthingMs === null ? null : round1(mbps(syncthingMs)),
    syncthing_missing: syncthingWhyNot ?? undefined,
    raw_datachannel_mbps: round1(raw.mbps),
    upload_mbps: round1(mbps(uploadMs)),
    download_mbps: round1(mbps(downloadMs)),
    cli_add_mbps: round1(mbps(cliAddMs)),
    cli_get_mbps: round1(mbps(cliGetMs)),
    upload_vs_tcp: round2(mbps(uploadMs) / tcpMbps),
    download_vs_tcp: round2(mbps(downloadMs) / tcpMbps),
    cli_add_vs_tcp: round2(mbps(cliAddMs) / tcpMbps),
    cli_get_vs_tcp: round2(mbps(cliGetMs) / tcpMbps),
    drive_vs_syncthing: syncthingMs === null ? null : round2(syncthingMs / uploadMs),
    cli_vs_syncthing: syncthingMs === null ? null : round2(syncthingMs / cliAddMs),
    upload_vs_raw: round2(mbps(uploadMs) / raw.mbps),
    download_vs_raw: round2(mbps(downloadMs) / raw.mbps),
    peak_own_engine_mb: enginePeak.own,
    peak_own_browser_mb: browserPeak.own,
    peak_own_browser_process: browserPeak.kind,
    peak_rss_engine_mb: enginePeak.rss,
    peak_rss_browser_mb: browserPeak.rss,
    cpu_seconds_last_round: profile,
    targets: { upload_vs_tcp: 0.9, download_vs_tcp: 0.9, drive_vs_syncthing: 1, peak_own_mb: 200 },
    unit: 'Mbit/s',
    notes: 'memory: own = RssAnon + RssShmem of the process that had the most (rss adds the mapped program and libraries, shared by all Chromium processes: about 170 MB of an idle browser process). both hosts\' links shaped to link_mbit (tc tbf). upload = a file on disk chosen in the page, read once by the page, its bytes sealed, coded, stored and placed by node1\'s engine as they come, timed by the page until its upload resolves, which is once node2 holds its 3 of every chunk\'s 6 fragments (checked); download = restored from both nodes\' fragments into a Chrome download on disk, bytes checked; cli_add = `files add` on node1 until it ends, once node2 holds its share (checked), cli_get = `files get` on node2 into a file; syncthing = the same file linked into a shared folder and scanned, until it is whole on the other device; cpu_seconds_last_round: CPU time of each process (by node and Chromium process type) during each contender in the last round',
    every_round: rounds,
    measured_at: new Date().toISOString(),
  };
  writeResults('drive', results);
} finally {
  syncthing?.stop();
  await mesh.stop();
}
