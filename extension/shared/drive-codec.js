// Streams a Blob (a File from a picker or a drop) through the wasm core
// without holding the file in memory: one pass computes the content hash,
// which the engine turns into the file's id and key (only it holds the
// network key); a second pass seals chunk by chunk (the engine codes the
// fragments as it verifies). Memory stays at a few chunks whatever the
// file size.

const READ_BUFFER = 1024 * 1024;

/**
 * Reads a Blob piece by piece into one reused buffer (a BYOB reader), calling
 * `onPiece(Uint8Array)` for each; the piece is only valid during the call.
 */
async function readBlob(blob, onPiece) {
  const reader = blob.stream().getReader({ mode: 'byob' });
  let buffer = new ArrayBuffer(READ_BUFFER);
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(buffer));
    if (done) return;
    await onPiece(value);
    buffer = value.buffer;
  }
}

/** BLAKE3 of a Blob's bytes. */
export async function hashBlob(core, blob) {
  const hasher = new core.ContentHasher();
  try {
    await readBlob(blob, (piece) => hasher.update(piece));
    return hasher.finalize();
  } finally {
    hasher.free();
  }
}

/**
 * Seals a Blob's chunks under the id and key the engine gave for its
 * content. `onChunk(chunk)` receives every sealed chunk in order (a wasm
 * `Sealed`: `index`, `framedLength`, `copyFramedInto`); it may be async,
 * and reading waits for it, which gives backpressure.
 * @param {{k: number, m: number, chunkSize: number, fileId: Uint8Array, fileKey: Uint8Array}} coding
 */
export async function sealBlob(core, blob, { k, m, chunkSize, fileId, fileKey }, onChunk) {
  const sealer = new core.Sealer(k, m, chunkSize, fileId, fileKey, blob.size);
  try {
    const drain = async () => {
      for (let chunk = sealer.pollChunk(); chunk; chunk = sealer.pollChunk()) {
        try {
          await onChunk(chunk);
        } finally {
          chunk.free();
        }
      }
    };
    await drain(); // an empty file's only chunk exists before any byte
    await readBlob(blob, async (piece) => {
      sealer.push(piece);
      await drain();
    });
    sealer.finish();
  } finally {
    sealer.free();
  }
}
