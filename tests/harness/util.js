// Small helpers shared by the harness: free ports, waiting, temp dirs.

import net from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { IdleDeadline } from './idle-time.js';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * `count` distinct TCP ports on 127.0.0.1 that were free a moment ago:
 * all are held until the last is found, so no two are the same (a port
 * given back by one `freePort` can be the next one's answer).
 */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      servers.push(await new Promise((resolve, reject) => {
        const server = net.createServer();
        server.unref();
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      }));
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` until it returns a truthy value (returned) or the machine
 * has sat idle for `timeoutMs` meanwhile (throws with `what` in the
 * message; see idle-time.js for why idle time).
 */
export async function waitFor(what, check, { timeoutMs = 15_000, everyMs = 100 } = {}) {
  const deadline = new IdleDeadline(timeoutMs);
  let last;
  while (!deadline.passed) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export function waitForPort(port, what, timeoutMs = 15_000) {
  return waitFor(`${what} on port ${port}`, () => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('connect', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  }), { timeoutMs });
}

/** A fresh directory under the system temp dir. */
export function tempDir(prefix) {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Waits for a child process to exit; kills it after `graceMs`. */
export async function stopChild(child, { signal = 'SIGTERM', graceMs = 5_000 } = {}) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
