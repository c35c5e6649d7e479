// The offscreen document: the home of the WebRTC peer connections (which a
// service worker cannot hold) and so of the mesh. Extension pages reach it
// with `mesh.*` runtime messages (see shared/messages/runtime.js), through
// a handler map that answers only this extension's own pages.

import { loadCore } from '../shared/core.js';
import { MeshType, RuntimeType, callWorker } from '../shared/messages/runtime.js';
import { isOwnPage } from '../shared/own-page.js';
import { Mesh } from './mesh.js';
import { Echo } from './echo.js';
import { Bench } from './bench.js';

const core = await loadCore();
const mesh = new Mesh(core);
const echo = new Echo(mesh);
const bench = new Bench(mesh);
mesh.start();

const handlers = {
  [MeshType.STATE]: async () => ({
    nodeId: mesh.nodeId,
    socket: mesh.socket.isOpen,
    peers: [...mesh.peers.values()].map((p) => ({ ...p, link: mesh.pathTo(p.id), carried: mesh.carried.get(p.id) ?? null })),
  }),
  [MeshType.ECHO]: (m) => echo.check(m.peer, m.size ?? 1024),
  [MeshType.BENCH]: (m) => bench.run(m.peer, m.bytes, m.mode),
};

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  const handler = handlers[message?.type];
  if (!handler || !isOwnPage(sender)) return false;
  handler(message).then(sendResponse, (e) => sendResponse({ error: String(e?.message ?? e) }));
  return true;
});

callWorker({ type: RuntimeType.OFFSCREEN_READY }).catch(() => {});
