// `scripts/bench link`: between two nodes on separate machines of a test
// LAN, in one run: the raw RTCDataChannel (no mailmesh framing or
// handshake), mailmesh's authenticated, framed, flow-controlled channel,
// and the loopback bulk channel to the engine. The three are interleaved
// so that they see the same machine; the best of the rounds counts.
// Prints a table and writes bench/results/link.json.

import { LanMesh } from '../harness/lan-mesh.js';
import { waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MIB = Number(process.env.BENCH_LINK_MIB ?? 64);
const ROUNDS = Number(process.env.BENCH_LINK_ROUNDS ?? 3);
const MODES = ['raw', 'mesh', 'loopback'];

const mesh = await LanMesh.start(2);
try {
  const [popup] = mesh.popups;
  const peer = mesh.ids[1];
  await waitFor('a direct link', async () =>
    (await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' }))).peers.some((p) => p.link === 'webrtc'),
  { timeoutMs: 30_000, everyMs: 250 }).catch(async (e) => {
    throw new Error(`${e.message}: ${JSON.stringify(await popup.evaluate(() => chrome.runtime.sendMessage({ type: 'mesh.state' })))}`);
  });

  const best = Object.fromEntries(MODES.map((m) => [m, 0]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const mode of MODES) {
      const result = await popup.evaluate(
        (m) => chrome.runtime.sendMessage({ type: 'mesh.bench', ...m }),
        { peer, bytes: MIB * 1024 * 1024, mode });
      if (result.error) throw new Error(`${mode}: ${result.error}`);
      console.log(`round ${round} ${mode.padEnd(8)} ${result.mbps.toFixed(1).padStart(8)} Mbit/s  (${(result.mbps / 8).toFixed(1)} MB/s)`);
      best[mode] = Math.max(best[mode], result.mbps);
    }
  }
  const results = {
    bytes_per_run: MIB * 1024 * 1024,
    rounds: ROUNDS,
    raw_datachannel_mbps: round1(best.raw),
    mesh_channel_mbps: round1(best.mesh),
    loopback_mbps: round1(best.loopback),
    mesh_vs_raw: round2(best.mesh / best.raw),
    loopback_vs_raw: round2(best.loopback / best.raw),
    targets: { mesh_vs_raw: 0.9, loopback_vs_raw: 5 },
    unit: 'Mbit/s',
    measured_at: new Date().toISOString(),
  };
  writeResults('link', results);
} finally {
  await mesh.stop();
}
