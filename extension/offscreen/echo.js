// The mesh's echo service: every node answers `mesh.echo` requests with the
// same bytes. The nodes page uses it to check a link end to end, and the
// tests use it to prove that bytes arrive intact on each path.
//
// Payload: [kind u8: 0 request, 1 answer][request id u32 big-endian][bytes …]

const TOPIC = 'mesh.echo';
const TIMEOUT_MS = 15_000;

export class Echo {
  /** @param {import('./mesh.js').Mesh} mesh */
  constructor(mesh) {
    this.mesh = mesh;
    this.nextId = 1;
    /** @type {Map<number, (payload: Uint8Array) => void>} */
    this.waiting = new Map();
    mesh.on(TOPIC, (peer, payload) => this.onMessage(peer, payload));
  }

  onMessage(peer, payload) {
    if (payload.length < 5) return;
    const id = new DataView(payload.buffer, payload.byteOffset).getUint32(1);
    if (payload[0] === 0) {
      const answer = payload.slice();
      answer[0] = 1;
      this.mesh.send(peer, TOPIC, answer).catch(() => {});
    } else {
      this.waiting.get(id)?.(payload.subarray(5));
    }
  }

  /**
   * Sends `size` random bytes to `peer` and checks what comes back.
   * @returns {Promise<{equal: boolean, path: string | null, ms: number}>}
   */
  async check(peer, size) {
    const id = this.nextId++;
    const body = new Uint8Array(size);
    for (let i = 0; i < size; i += 65536) crypto.getRandomValues(body.subarray(i, Math.min(size, i + 65536)));
    const request = new Uint8Array(5 + size);
    new DataView(request.buffer).setUint32(1, id);
    request.set(body, 5);
    const path = this.mesh.pathTo(peer);
    const started = performance.now();
    const answer = new Promise((resolve, reject) => {
      this.waiting.set(id, resolve);
      setTimeout(() => reject(new Error(`no echo from ${peer} in time`)), TIMEOUT_MS);
    }).finally(() => this.waiting.delete(id));
    await this.mesh.send(peer, TOPIC, request);
    const back = await answer;
    const equal = back.length === body.length && back.every((b, i) => b === body[i]);
    return { equal, path, ms: performance.now() - started };
  }
}
