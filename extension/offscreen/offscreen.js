// The offscreen document: the home of the WebRTC peer connections (which a
// service worker cannot hold). For now it only announces itself; the mesh
// links live here once they exist.

import { RuntimeType, callWorker } from '../shared/messages/runtime.js';

callWorker({ type: RuntimeType.OFFSCREEN_READY }).catch(() => {});
