// mailmesh's service worker: holds the native port and routes messages.
//
// Chrome may stop this worker at any time and start it again on the next
// event. Everything here is therefore set up at the top level on every
// start, and the state pages need lives in chrome.storage.session.

import { NativeLink } from './native-link.js';
import { resetState } from './state-store.js';
import { ensureOffscreenDocument } from './offscreen.js';
import { listen, makeHandlers } from './handlers.js';

const RECONNECT_ALARM = 'mailmesh-reconnect';

const link = new NativeLink();
listen(makeHandlers(link));

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
