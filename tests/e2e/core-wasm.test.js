// The drive pipeline compiled to wasm, run in real Chromium inside an
// extension page: it codes exactly like the native build (a pinned known
// answer shared with wasm-core/src/drive/tests.rs) and any k fragments of
// every chunk restore the exact bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { MeshNode } from '../harness/node.js';
import { REPO } from '../harness/paths.js';
import { tempDir } from '../harness/util.js';

const KNOWN_ANSWER = /KNOWN_ANSWER: &str = "([0-9a-f]{64})"/.exec(
  fs.readFileSync(path.join(REPO, 'wasm-core/src/drive/tests.rs'), 'utf8'),
)[1];

test('wasm core round-trips files in Chromium and codes like the native build', async (t) => {
  const node = await MeshNode.start({ name: 'wasm', dir: path.join(await tempDir('mailmesh-wasm-'), 'n') });
  t.after(() => node.stop());
  const page = await node.openPage('app/app.html');

  const result = await page.evaluate(async ({ knownAnswer }) => {
    const { loadCore, bytesToHex } = await import('/shared/core.js');
    const { frameBlob } = await import('/shared/drive-codec.js');
    const core = await loadCore();

    // Known answer: same inputs as the native test `known_answer`.
    const data = Uint8Array.from({ length: 10_000 }, (_, i) => i % 251);
    const encoder = new core.Encoder(4, 2, 4096, new Uint8Array(32).fill(2), new Uint8Array(32).fill(1), data.length);
    encoder.push(data);
    const coded = [];
    for (let c = encoder.pollChunk(); c; c = encoder.pollChunk()) coded.push(c.bytes());
    const hasher = new core.ContentHasher();
    hasher.update(encoder.finish());
    const knownAnswerOk = bytesToHex(hasher.finalize()) === knownAnswer;

    // What a page uploads: the file's bytes in `/bulk` messages framed by
    // the core (`[7][offset u64 LE]`), in order, nothing lost or repeated.
    const big = Uint8Array.from({ length: 2_600_000 }, (_, i) => (i * 7) % 253);
    let framedOk = true;
    let expected = 0;
    let messages = 0;
    await frameBlob(core, new Blob([big]), (message, end) => {
      const view = new DataView(message.buffer, message.byteOffset, message.length);
      const piece = message.subarray(9);
      framedOk &&= message[0] === 7 && Number(view.getBigUint64(1, true)) === expected
        && end === expected + piece.length && piece.every((b, i) => b === big[expected + i]);
      expected = end;
      messages++;
    });
    framedOk &&= expected === big.length && messages >= 3;

    // Round trips with random parameters and random subsets of k fragments.
    let seed = 12345;
    const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const sizes = [0, 1, 4096, 8192, 15000, 65536 * 3, 1 + rand(300_000), 1 + rand(300_000)];
    const failures = [];
    const networkKey = new Uint8Array(32).fill(0x42);
    for (const size of sizes) {
      const k = 1 + rand(8);
      const m = 1 + rand(4);
      const chunkSize = [4096, 5000, 65536][rand(3)];
      const original = Uint8Array.from({ length: size }, () => rand(256));
      const chunks = [];
      // Version 1's id and key from the content hash (the binding codes
      // version 1; the engine, which codes new files, version 2).
      const contentHasher = new core.ContentHasher();
      contentHasher.update(original);
      const keys = core.convergentKeys(networkKey, contentHasher.finalize(), k, m, chunkSize);
      const file = { fileId: keys.slice(0, 32), fileKey: keys.slice(32) };
      const ids = [];
      const fileEncoder = new core.Encoder(k, m, chunkSize, file.fileId, file.fileKey, size);
      fileEncoder.push(original);
      for (let c = fileEncoder.pollChunk(); c; c = fileEncoder.pollChunk()) {
        chunks.push({ index: c.index, shardLen: c.shardLen, bytes: c.bytes() });
        ids.push(...c.ids());
      }
      fileEncoder.finish();
      const decoder = new core.Decoder(k, m, chunkSize, file.fileId, file.fileKey, size, Uint8Array.from(ids));
      const restored = new Uint8Array(size);
      let offset = 0;
      for (const c of chunks) {
        const n = k + m;
        const start = rand(n);
        const fragments = Array.from({ length: n }, (_, i) =>
          (i + n - start) % n < k ? c.bytes.subarray(i * c.shardLen, (i + 1) * c.shardLen) : undefined);
        const plain = decoder.decodeChunk(c.index, fragments);
        restored.set(plain, offset);
        offset += plain.length;
      }
      const same = offset === size && restored.every((b, i) => b === original[i]);
      if (!same) failures.push({ size, k, m, chunkSize });
    }

    // Too few fragments: a clear error, not garbage.
    let tooFew = '';
    try {
      const decoder = new core.Decoder(2, 1, 4096, new Uint8Array(32), new Uint8Array(32), 10, new Uint8Array(3 * 32));
      decoder.decodeChunk(0, [new Uint8Array(13), undefined, undefined]);
    } catch (e) {
      tooFew = e.message;
    }
    return { knownAnswerOk, framedOk, failures, roundTrips: sizes.length, tooFew };
  }, { knownAnswer: KNOWN_ANSWER });

  assert.ok(result.knownAnswerOk, 'wasm and native produce the same fragments');
  assert.ok(result.framedOk, 'the upload messages carry every byte once, in order, at its offset');
  assert.deepEqual(result.failures, []);
  assert.equal(result.roundTrips, 8);
  assert.match(result.tooFew, /chunk 0 cannot be restored: 1 of its fragments are damaged .* only 0 of the 2 needed are good/);
});
