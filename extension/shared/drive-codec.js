// Streams a Blob (a File from a picker or a drop) without holding it in
// memory: one pass frames its bytes as the `/bulk` upload messages the
// engine seals and codes as they come (wasm-core `drive::upload`; each chunk
// is keyed by its own bytes, so nothing needs the whole file first). Memory
// stays at a few pieces whatever the file size.

const READ_BUFFER = 1024 * 1024;

/**
 * Reads a Blob piece by piece into one reused buffer (a BYOB reader), each
 * piece `headroom` bytes into it, calling `onPiece(Uint8Array)` for each: a
 * view of the piece whose buffer has `headroom` free bytes before it. The
 * piece is only valid during the call.
 */
async function readBlob(blob, onPiece, headroom = 0) {
  const reader = blob.stream().getReader({ mode: 'byob' });
  let buffer = new ArrayBuffer(headroom + READ_BUFFER);
  for (;;) {
    const { done, value } = await reader.read(new Uint8Array(buffer, headroom));
    if (done) return;
    await onPiece(value);
    buffer = value.buffer;
  }
}

/**
 * Reads a Blob into `/bulk` upload messages (`[7][offset][bytes]`, framed
 * by the core), read straight into the message after its header. `send`
 * receives each (valid only during the call: it must copy, as
 * `WebSocket.send` does) and may be async: reading waits for it, which
 * gives backpressure.
 * @param {(message: Uint8Array, end: number) => Promise<void>|void} send `end`: the file's bytes sent with this one
 */
export async function frameBlob(core, blob, send) {
  const headerLength = core.putBytesHeaderLength();
  let offset = 0;
  await readBlob(blob, async (piece) => {
    const message = new Uint8Array(piece.buffer, piece.byteOffset - headerLength, headerLength + piece.length);
    core.writePutBytesHeader(message, offset);
    offset += piece.length;
    await send(message, offset);
  }, headerLength);
}
