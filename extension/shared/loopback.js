// Opening a loopback WebSocket to this node's engine, from any extension
// page: a one-time token from the service worker (which asks the engine
// over native messaging), and our Origin, which the engine checks too.

import { RuntimeType, callWorker } from './messages/runtime.js';

/**
 * Opens `/mesh` or `/bulk` and resolves once the socket is open.
 * @param {string} path
 * @returns {Promise<WebSocket>}
 */
export async function openEngineSocket(path) {
  const { port, token } = await callWorker({ type: RuntimeType.SOCKET_TOKEN });
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}?token=${encodeURIComponent(token)}`);
  ws.binaryType = 'arraybuffer';
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error('the engine refused the socket'));
  });
  return ws;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
