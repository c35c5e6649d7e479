// The call page: one tab per call. `#with=a@x,b@y&title=T` starts a room
// and invites them; `#room=<id>` joins one we were invited to. Camera and
// microphone are asked for here; media goes browser to browser, and only
// the signaling passes through the engines (see engine/calls.rs).

import { openEngineSocket } from '../shared/loopback.js';
import { CallType } from '../shared/messages/call.js';
import { PeerCall } from './peer-call.js';

const SPEAKING_LEVEL = 0.02;
const STATS_EVERY_MS = 400;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.hash.slice(1));
const say = (text) => { $('call-result').textContent = text; };
const setState = (state, words = state) => {
  $('call-state').dataset.state = state;
  $('call-state').textContent = words;
};

/** @type {Map<string, PeerCall>} */
const peers = new Map();
const local = { muted: false, camera: true };
let me = '';
let room = params.get('room') ?? '';
/** @type {WebSocket} */
let socket;
/** @type {MediaStream} */
let stream;

function send(message) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ room, ...message }));
}

function tile(node) {
  let figure = document.getElementById(`tile-${node}`);
  if (!figure) {
    figure = Object.assign(document.createElement('figure'), { className: 'tile', id: `tile-${node}` });
    figure.dataset.node = node;
    const video = Object.assign(document.createElement('video'), { autoplay: true, playsInline: true });
    figure.append(video, Object.assign(document.createElement('figcaption'), {}));
    $('tiles').append(figure);
  }
  return figure;
}

function renderPeer(peer) {
  const figure = tile(peer.node);
  const flags = [peer.remote.muted ? 'muted' : '', peer.remote.camera ? '' : 'camera off'].filter(Boolean).join(', ');
  figure.querySelector('figcaption').textContent = `${peer.email}${flags ? ` (${flags})` : ''}`;
  figure.classList.toggle('camera-off', !peer.remote.camera);
  figure.dataset.state = peer.pc.connectionState;
}

function peerFor(node, email) {
  let peer = peers.get(node);
  if (!peer) {
    peer = new PeerCall(node, email, {
      me,
      stream,
      signal: (data) => send({ type: CallType.SIGNAL, to: node, data }),
      onTrack: (p, remote) => { tile(p.node).querySelector('video').srcObject = remote; },
      onState: renderPeer,
    });
    peers.set(node, peer);
    renderPeer(peer);
    send({ type: CallType.STATE, data: local });
  }
  return peer;
}

function drop(node) {
  peers.get(node)?.close();
  peers.delete(node);
  document.getElementById(`tile-${node}`)?.remove();
}

/** What the engine passes on from the others. */
const fromOthers = {
  // A newcomer: tell them we are here; the smaller id offers.
  [CallType.JOIN]: (m) => {
    drop(m.from);
    send({ type: CallType.PRESENT, to: m.from });
    peerFor(m.from, m.email).offer().catch((e) => say(e.message));
  },
  [CallType.PRESENT]: (m) => {
    if (!peers.has(m.from)) peerFor(m.from, m.email).offer().catch((e) => say(e.message));
  },
  [CallType.SIGNAL]: (m) => peerFor(m.from, m.email).handle(m.data).catch((e) => say(e.message)),
  [CallType.STATE]: (m) => {
    const peer = peers.get(m.from);
    if (!peer) return;
    peer.remote = { muted: Boolean(m.data?.muted), camera: m.data?.camera !== false };
    renderPeer(peer);
  },
  [CallType.LEAVE]: (m) => drop(m.from),
  [CallType.ERROR]: (m) => say(m.message),
};

/** Who is speaking, from the audio levels WebRTC measures. */
async function watchSpeaking() {
  for (const peer of peers.values()) {
    const { audioLevel } = await peer.stats();
    tile(peer.node).classList.toggle('speaking', audioLevel > SPEAKING_LEVEL && !peer.remote.muted);
  }
}

function toggle(button, key, words) {
  local[key] = !local[key];
  const track = key === 'muted' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  if (track) track.enabled = key === 'muted' ? !local.muted : local.camera;
  const pressed = key === 'muted' ? local.muted : !local.camera;
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = words[pressed ? 1 : 0];
  $('tile-me').classList.toggle('camera-off', !local.camera);
  $('tile-me').querySelector('.flags').textContent = [local.muted ? 'muted' : '', local.camera ? '' : 'camera off'].filter(Boolean).join(', ');
  send({ type: CallType.STATE, data: local });
}

function leave() {
  send({ type: CallType.LEAVE });
  for (const node of [...peers.keys()]) drop(node);
  stream?.getTracks().forEach((t) => t.stop());
  socket?.close();
  setState('left', 'left the call');
}

async function start() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (e) {
    setState('error', 'no camera or microphone');
    say(`The camera and microphone are needed for a call: ${e.message}`);
    return;
  }
  $('local-video').srcObject = stream;
  socket = await openEngineSocket('/call');
  const hello = await new Promise((resolve) => { socket.onmessage = (e) => resolve(JSON.parse(e.data)); });
  me = hello.node_id;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    fromOthers[message.type]?.(message);
  };
  socket.onclose = () => { if ($('call-state').dataset.state !== 'left') setState('error', 'lost the engine'); };
  const invite = params.get('with');
  if (invite) {
    room = crypto.randomUUID();
    const members = invite.split(',').map((m) => m.trim()).filter(Boolean);
    send({ type: CallType.INVITE, members, title: params.get('title') ?? '' });
    history.replaceState(null, '', `#room=${room}`);
  }
  $('call-title').textContent = params.get('title') || 'Call';
  send({ type: CallType.JOIN });
  setState('in-call', 'in the call');
  setInterval(() => watchSpeaking().catch(() => {}), STATS_EVERY_MS);
}

$('mute').addEventListener('click', (e) => toggle(e.currentTarget, 'muted', ['Mute', 'Unmute']));
$('camera').addEventListener('click', (e) => toggle(e.currentTarget, 'camera', ['Camera off', 'Camera on']));
$('leave').addEventListener('click', leave);
window.addEventListener('pagehide', leave);

/** For tests and the curious: each participant's connection and frames. */
window.mailmeshCall = {
  room: () => room,
  stats: () => Promise.all([...peers.values()].map((p) => p.stats())),
};

start().catch((e) => {
  setState('error', 'could not start');
  say(e.message);
});
