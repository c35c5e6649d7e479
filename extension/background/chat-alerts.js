// Tells the owner about chat while they are elsewhere: the unread count on
// the toolbar icon, and a notification for a new message when no app page
// is open (an open app page shows it itself).
//
// What was already announced is kept in chrome.storage.session, since this
// worker may be stopped between two messages.

import { request } from '../shared/messages/native.js';
import { updateState } from './state-store.js';

const NOTIFIED_KEY = 'chatNotifiedAt';
const APP_URL = chrome.runtime.getURL('app/app.html');

/** Shows `count` unread messages on the icon (nothing for none). */
export function showUnread(count) {
  const text = count > 0 ? String(Math.min(count, 999)) : '';
  chrome.action.setBadgeText({ text }).catch(() => {});
  chrome.action.setBadgeBackgroundColor({ color: '#b3261e' }).catch(() => {});
}

async function appPageOpen() {
  const contexts = await chrome.runtime.getContexts({ contextTypes: ['TAB'] });
  return contexts.some((c) => c.documentUrl?.startsWith(APP_URL));
}

/**
 * The engine said chat changed: pages re-read it, and each conversation
 * with a message from someone else newer than the last one announced gets
 * a notification unless the app page is open.
 * @param {import('./native-link.js').NativeLink} link
 */
export async function onChatChanged(link) {
  await updateState({ chatChangedAt: Date.now() });
  const { conversations } = await link.request(request.chatList());
  const stored = await chrome.storage.session.get(NOTIFIED_KEY);
  const since = stored[NOTIFIED_KEY] ?? Date.now() - 60_000;
  const fresh = conversations.filter((c) => c.unread > 0 && c.last_at > since);
  if (!fresh.length) return;
  await chrome.storage.session.set({ [NOTIFIED_KEY]: Math.max(...fresh.map((c) => c.last_at)) });
  if (await appPageOpen()) return;
  for (const c of fresh) {
    chrome.notifications.create(`chat:${c.id}`, {
      type: 'basic',
      iconUrl: chrome.runtime.getURL('icons/icon-128.png'),
      title: c.title,
      message: c.last_text.slice(0, 200),
    });
  }
}

chrome.notifications.onClicked.addListener((id) => {
  if (!id.startsWith('chat:')) return;
  chrome.tabs.create({ url: `${APP_URL}#chat/${id.slice(5)}` });
  chrome.notifications.clear(id);
});
