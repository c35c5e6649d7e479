// mailmesh's service worker: holds the native port and routes messages.
//
// Chrome may stop this worker at any time and start it again on the next
// event. Everything here is therefore set up at the top level on every
// start, and the state pages need lives in chrome.storage.session.

import { NativeLink } from './native-link.js';
import { markChanged, resetState } from './state-store.js';
import { ensureOffscreenDocument } from './offscreen.js';
import { listen, makeHandlers } from './handlers.js';
import { DOWNLOAD_PATH, PREVIEW_PATH, answerDownload, answerPreview } from './downloads.js';
import { announceNewMessages, onCallsChanged, onChatChanged, onTransfersChanged, showUnread } from './alerts.js';

const RECONNECT_ALARM = 'mailmesh-reconnect';

// The unread count last shown; a fresh worker starts from none, so what
// came before it attached is announced too.
let unreadShown = 0;
const link = new NativeLink({
  onStatus: (status) => {
    const unread = status.chat_unread ?? 0;
    showUnread(unread);
    if (unread > unreadShown) announceNewMessages(link).catch((e) => console.warn('mailmesh: chat alert', e));
    unreadShown = unread;
  },
  onChanged: (kind) => markChanged(kind),
  onChatChanged: () => onChatChanged(link),
  onTransfersChanged: () => onTransfersChanged(link).catch((e) => console.warn('mailmesh: transfer alert', e)),
  onCallsChanged: () => onCallsChanged(link).catch((e) => console.warn('mailmesh: call alert', e)),
});
listen(makeHandlers(link));

// Drive downloads: a hidden frame of one of our pages navigates here and
// gets the file as an attachment (see downloads.js).
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith(DOWNLOAD_PATH)) event.respondWith(answerDownload(url.pathname.slice(DOWNLOAD_PATH.length)));
  if (url.pathname.startsWith(PREVIEW_PATH)) {
    event.respondWith(answerPreview(link, url.pathname.slice(PREVIEW_PATH.length), event.request.headers.get('Range')));
  }
});

// Pages opened before this worker first ran are served by it at once, so a
// page can fetch a preview's ranges (the player's own requests always are).
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

chrome.runtime.onInstalled.addListener(({ reason }) => {
  if (reason === chrome.runtime.OnInstalledReason.INSTALL) {
    chrome.tabs.create({ url: chrome.runtime.getURL('onboarding/onboarding.html') });
  }
});

// A backstop for the backoff timer, which dies with the worker.
chrome.alarms.create(RECONNECT_ALARM, { periodInMinutes: 0.5 });
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === RECONNECT_ALARM) link.connect();
});
chrome.runtime.onStartup.addListener(() => link.connect());

resetState().then(() => link.connect());
ensureOffscreenDocument().catch((e) => console.warn('mailmesh: no offscreen document', e));
