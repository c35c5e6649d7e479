// Tells the owner what happened while they are elsewhere: the unread chat
// count on the toolbar icon, and a notification for a new message or a
// file offered to them when no app page is open (an open app page shows
// it itself), and for a download that failed part way (also recorded in
// the state, where open pages show it).
//
// What was already announced is kept in chrome.storage.session, since this
// worker may be stopped between two messages.

import { request } from '../shared/messages/native.js';
import { updateState } from './state-store.js';

const NOTIFIED_KEY = 'chatNotifiedAt';
const OFFERS_KEY = 'offersNotified';
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

/** A burst of chat changes is looked at once (a sync or a busy group can bring hundreds a second). */
const CHAT_COALESCE_MS = 250;
let chatTimer = null;

/**
 * The engine said chat changed: the badge's unread count and, for new
 * messages, a notification. One look (one `chat_list`) a burst: this
 * runs on the same cores as the chat it reports on, and looking at every
 * change (with a full status refresh besides) took a conversation from
 * 5 ms to 10 ms a message at the median.
 * (Pages re-read chat through `onEngineChange`.)
 * @param {import('./native-link.js').NativeLink} link
 */
export function onChatChanged(link) {
  if (chatTimer) return;
  chatTimer = setTimeout(() => {
    chatTimer = null;
    lookAtChat(link).catch((e) => console.warn('mailmesh: chat alert', e));
  }, CHAT_COALESCE_MS);
}

async function lookAtChat(link) {
  const { conversations } = await link.request(request.chatList());
  showUnread(conversations.reduce((sum, c) => sum + c.unread, 0));
  await announce(conversations);
}

/**
 * Each conversation with a message from someone else newer than the last
 * one announced gets a notification, unless the app page is open. Called
 * on every look at chat and with every status that shows more unread
 * messages, so a message that came before this worker attached is
 * announced too.
 * @param {import('./native-link.js').NativeLink} link
 */
export async function announceNewMessages(link) {
  const { conversations } = await link.request(request.chatList());
  await announce(conversations);
}

async function announce(conversations) {
  const stored = await chrome.storage.session.get(NOTIFIED_KEY);
  const since = stored[NOTIFIED_KEY] ?? Date.now() - 60_000;
  const fresh = conversations.filter((c) => c.unread > 0 && c.last_at > since);
  if (!fresh.length) return;
  await chrome.storage.session.set({ [NOTIFIED_KEY]: Math.max(...fresh.map((c) => c.last_at)) });
  if (await appPageOpen()) return;
  for (const c of fresh) notify(`chat:${c.id}`, c.title, c.last_text);
}

/**
 * Transfers changed: a file newly offered to the owner gets a notification
 * unless the app page is open.
 * @param {import('./native-link.js').NativeLink} link
 */
export async function onTransfersChanged(link) {
  const { transfers } = await link.request(request.sendList());
  const offers = transfers.filter((t) => t.direction === 'in' && t.state === 'offered');
  const known = new Set((await chrome.storage.session.get(OFFERS_KEY))[OFFERS_KEY] ?? []);
  const fresh = offers.filter((t) => !known.has(t.id));
  if (!fresh.length) return;
  await chrome.storage.session.set({ [OFFERS_KEY]: [...known, ...fresh.map((t) => t.id)] });
  if (await appPageOpen()) return;
  for (const t of fresh) notify(`send:${t.id}`, `${t.peer} offers you a file`, `${t.name} (${(t.size / 1e6).toFixed(1)} MB)`);
}

/**
 * Calls changed: a new invitation gets a notification (click to join).
 * @param {import('./native-link.js').NativeLink} link
 */
export async function onCallsChanged(link) {
  const { calls } = await link.request(request.callsList());
  const key = 'callsNotified';
  const known = new Set((await chrome.storage.session.get(key))[key] ?? []);
  const fresh = calls.filter((c) => !c.joined && !known.has(c.room));
  if (!fresh.length) return;
  await chrome.storage.session.set({ [key]: [...known, ...fresh.map((c) => c.room)] });
  for (const c of fresh) notify(`call:${c.room}`, `${c.invited_by} is calling`, c.title || c.members.join(', '));
}

/**
 * A download failed part way: the engine's words (Chrome's download list
 * says only "network error").
 * @param {{id: string, name: string}} file
 * @param {string} message
 */
export function downloadFailed(file, message) {
  notify(`download:${file.id}`, `${file.name} could not be downloaded`, message);
  updateState({ downloadFailure: { name: file.name, message, at: Date.now() } });
}

function notify(id, title, message) {
  chrome.notifications.create(id, {
    type: 'basic',
    iconUrl: chrome.runtime.getURL('icons/icon-128.png'),
    title,
    message: message.slice(0, 200),
  });
}

chrome.notifications.onClicked.addListener((id) => {
  const [kind, what] = id.split(':');
  const url = {
    chat: `${APP_URL}#chat/${what}`,
    send: `${APP_URL}#people`,
    download: `${APP_URL}#drive`,
    call: chrome.runtime.getURL(`call/call.html#room=${encodeURIComponent(what)}`),
  }[kind];
  if (!url) return;
  chrome.tabs.create({ url });
  chrome.notifications.clear(id);
});
