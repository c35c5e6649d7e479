// `scripts/bench comms`: two people on separate machines of a test LAN, in
// one run: chat latency from Alice's engine taking a message to Bob's
// engine having it (median and p99), over the data channel between their
// browsers and, with no browser open, over the engines' link; a direct
// send from Alice to Bob; and the raw RTCDataChannel between their two
// browsers (256 KiB messages, flow control on bufferedAmount) as the
// reference. Writes bench/results/comms.json.

import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Control } from '../harness/control.js';
import { PeopleLan } from '../harness/people-lan.js';
import { waitFor } from '../harness/util.js';
import { round1, round2, writeResults } from './results.js';

const MESSAGES = Number(process.env.BENCH_CHAT_MESSAGES ?? 300);
const SEND_MIB = Number(process.env.BENCH_SEND_MIB ?? 256);
const RAW_MIB = Number(process.env.BENCH_RAW_MIB ?? 128);
const MiB = 1024 * 1024;

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** MB/s of a raw data channel between two extension pages. */
async function rawChannel(a, b, bytes) {
  const offer = await a.evaluate(async () => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.benchPc = pc;
    window.benchDc = pc.createDataChannel('bench', { ordered: true });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
    return pc.localDescription.toJSON();
  });
  const answer = await b.evaluate(async (sdp) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    window.benchPc = pc;
    window.benchReceived = new Promise((resolve) => {
      pc.ondatachannel = ({ channel }) => {
        channel.binaryType = 'arraybuffer';
        let got = 0;
        let start = 0;
        channel.onmessage = ({ data }) => {
          if (!start) start = performance.now();
          got += data.byteLength;
          if (got >= window.benchExpect) resolve({ ms: performance.now() - start, got });
        };
      };
    });
    await pc.setRemoteDescription(sdp);
    await pc.setLocalDescription(await pc.createAnswer());
    await new Promise((r) => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
    return pc.localDescription.toJSON();
  }, offer);
  await b.evaluate((n) => { window.benchExpect = n; }, bytes);
  await a.evaluate(async ({ sdp, bytes }) => {
    await window.benchPc.setRemoteDescription(sdp);
    const dc = window.benchDc;
    await new Promise((r) => { dc.onopen = r; });
    const chunk = new Uint8Array(256 * 1024);
    dc.bufferedAmountLowThreshold = 2 * 1024 * 1024;
    for (let sent = 0; sent < bytes; sent += chunk.length) {
      if (dc.bufferedAmount > 8 * 1024 * 1024) await new Promise((r) => { dc.onbufferedamountlow = r; });
      dc.send(chunk);
    }
  }, { sdp: answer, bytes });
  const { ms, got } = await b.evaluate(() => window.benchReceived);
  await Promise.all([a, b].map((p) => p.evaluate(() => window.benchPc.close())));
  return got / 1e6 / (ms / 1000);
}

const lan = await PeopleLan.start({ alice: 1, bob: 1 });
try {
  const { alice1, bob1 } = lan.nodes;
  // Both ways: a data channel is made only between people who verified
  // each other.
  await lan.verify(alice1, 'bob');
  await lan.verify(bob1, 'alice');
  const alice = await Control.connect(alice1.home);
  const bob = await Control.connect(bob1.home);

  /** Chat latency, one message at a time; sorted milliseconds. */
  const chatLatencies = async (label) => {
    const latencies = [];
    for (let i = 0; i < MESSAGES + 10; i++) {
      const text = `${label} ${i}`;
      const arrived = bob.until('chat_changed', async () =>
        (await bob.request({ type: 'chat_show', conversation: lan.email.alice })).conversation.messages.some((m) => m.text === text));
      const start = performance.now();
      await alice.request({ type: 'chat_send', conversation: lan.email.bob, text });
      const arrivedAt = await arrived.then(() => performance.now());
      if (i >= 10) latencies.push(arrivedAt - start); // the first few warm up
    }
    return latencies.sort((a, b) => a - b);
  };
  const relayed = await chatLatencies('relay');

  // Direct send, accepted at once.
  const file = path.join(alice1.dir, 'bench.bin');
  await fs.writeFile(file, crypto.randomBytes(SEND_MIB * MiB));
  const offered = bob.next('transfers_changed');
  await alice.request({ type: 'send_file', to: lan.email.bob, path: file });
  await offered;
  const { transfers } = await bob.request({ type: 'send_list' });
  const incoming = transfers.find((t) => t.name === 'bench.bin');
  const sendStart = performance.now();
  await bob.request({ type: 'send_accept', transfer: incoming.id, to: 'downloads', dir: path.join(bob1.dir, 'received') });
  await waitFor('the direct send', async () =>
    (await bob.request({ type: 'send_list' })).transfers.find((t) => t.id === incoming.id).state === 'done',
  { timeoutMs: 600_000, everyMs: 50 });
  const sendMBps = (SEND_MIB * MiB) / 1e6 / ((performance.now() - sendStart) / 1000);
  // The browsers: chat over their data channel, and the raw channel.
  await Promise.all([alice1.startBrowser(), bob1.startBrowser()]);
  const bobId = (await bob1.status()).node_id;
  await waitFor('a data channel from Alice to Bob', async () =>
    (await alice1.status()).peers.find((p) => p.id === bobId)?.path === 'webrtc', { timeoutMs: 60_000, everyMs: 250 });
  // An attached DevTools client records every WebSocket frame: measure
  // without one, as a person's browser runs.
  await Promise.all([alice1, bob1].map((n) => n.detachDevTools()));
  const direct = await chatLatencies('direct');
  await Promise.all([alice1, bob1].map((n) => n.attachDevTools()));
  alice.close();
  bob.close();
  const [a, b] = await Promise.all([alice1.openPage('app/app.html'), bob1.openPage('app/app.html')]);
  const rawMBps = await rawChannel(a, b, RAW_MIB * MiB);

  writeResults('comms', {
    chat_messages: MESSAGES,
    chat_path: 'data channel between the browsers',
    chat_p50_ms: round2(percentile(direct, 50)),
    chat_p99_ms: round2(percentile(direct, 99)),
    chat_max_ms: round2(direct[direct.length - 1]),
    chat_relay_p50_ms: round2(percentile(relayed, 50)),
    chat_relay_p99_ms: round2(percentile(relayed, 99)),
    send_bytes: SEND_MIB * MiB,
    send_mbps: round1(sendMBps * 8),
    raw_datachannel_mbps: round1(rawMBps * 8),
    send_vs_raw: round2(sendMBps / rawMBps),
    send_path: 'engine to engine over the authenticated LAN link',
    targets: { chat_p99_ms: 50, chat_relay_p99_ms: 50, send_vs_raw: 0.9 },
    unit: 'Mbit/s',
    measured_at: new Date().toISOString(),
  });
} finally {
  const left = await lan.stop();
  if (left.length) console.warn('left running:', left);
}
