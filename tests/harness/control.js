// A client of a node's control socket (engine.sock, JSON lines), for
// benchmarks that must time requests and the engine's pushed events
// without a CLI process starting per call.

import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';

export class Control {
  /**
   * Connects to the engine of `home`. Resolves once the engine answered a
   * first request: it subscribes a connection to its events when it accepts
   * it, which may be after the socket is connected on this side, and an
   * event pushed in between would be missed.
   */
  static async connect(home) {
    const control = await new Promise((resolve, reject) => {
      const socket = net.createConnection(path.join(home, 'engine.sock'), () => resolve(new Control(socket)));
      socket.once('error', reject);
    });
    await control.request({ type: 'status' });
    return control;
  }

  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    /** @type {Set<(event: object) => void>} */
    this.listeners = new Set();
    readline.createInterface({ input: socket }).on('line', (line) => {
      const message = JSON.parse(line);
      const waiting = message.id != null && this.pending.get(message.id);
      if (waiting) {
        this.pending.delete(message.id);
        if (message.type === 'error') waiting.reject(new Error(message.message));
        else waiting.resolve(message);
      } else {
        for (const listener of this.listeners) listener(message);
      }
    });
  }

  request(message) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${JSON.stringify({ ...message, id })}\n`);
    });
  }

  /**
   * Resolves once `check()` (async) is true, checking again after every
   * pushed event of `type`; an event that comes while a check runs leads
   * to one more check, so none is missed.
   */
  until(type, check) {
    return new Promise((resolve, reject) => {
      let running = false;
      let again = false;
      const run = async () => {
        if (running) {
          again = true;
          return;
        }
        running = true;
        try {
          do {
            again = false;
            if (await check()) {
              this.listeners.delete(listener);
              resolve();
              return;
            }
          } while (again);
        } catch (e) {
          this.listeners.delete(listener);
          reject(e);
        } finally {
          running = false;
        }
      };
      const listener = (event) => { if (event.type === type) run(); };
      this.listeners.add(listener);
    });
  }

  /** Resolves with the next pushed event of `type` that `check` accepts. */
  next(type, check = () => true) {
    return new Promise((resolve) => {
      const listener = (event) => {
        if (event.type !== type || !check(event)) return;
        this.listeners.delete(listener);
        resolve(event);
      };
      this.listeners.add(listener);
    });
  }

  close() {
    this.socket.end();
  }
}
