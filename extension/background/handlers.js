// Messages from extension pages to the service worker, dispatched through
// a handler map. Only our own extension's pages are answered: content
// scripts do not exist in mailmesh, and no web page may reach these.

import { MESH_PREFIX, RuntimeType } from '../shared/messages/runtime.js';
import { request } from '../shared/messages/native.js';
import { readState } from '../shared/host-state.js';
import { isOwnPage } from '../shared/own-page.js';
import { SLOW_REQUEST_TIMEOUT_MS } from './native-link.js';
import { prepareDownload, preparePreview } from './downloads.js';

const MAIL_SEND_TIMEOUT_MS = 10 * 60_000;

/**
 * @param {import('./native-link.js').NativeLink} link
 * @returns {Record<string, (message: any) => Promise<any>>}
 */
export function makeHandlers(link) {
  return {
    [RuntimeType.GET_STATE]: async () => {
      link.connect();
      return readState();
    },
    [RuntimeType.REFRESH]: async () => {
      if (link.isOpen) await link.refresh();
      else link.reconnect();
      return readState();
    },
    [RuntimeType.START_ENGINE]: async () => {
      if (!link.isOpen) link.reconnect();
      else await link.request(request.startEngine());
      return readState();
    },
    [RuntimeType.OFFSCREEN_READY]: async () => ({ ok: true }),
    // The password passes through once, to the engine; it is never stored
    // in the extension nor sent back.
    [RuntimeType.ACCOUNT_DISCOVER]: (m) => link.request(request.accountDiscover(m.email, m.tlsCa), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.ACCOUNT_TEST]: (m) => link.request(request.accountTest(m.account), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.SIGN_IN_START]: (m) => link.request(request.signInStart(m.account, m.deviceName)),
    [RuntimeType.SIGN_IN_AGAIN]: () => link.request(request.signInAgain()),
    [RuntimeType.ACCOUNT_SAVE]: (m) => link.request(request.accountSave(m.account, m.deviceName), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.CONFIRM_CODE]: (m) => link.request(request.confirmCode(m.code)),
    [RuntimeType.NODE_REMOVE]: (m) => link.request(request.nodeRemove(m.nodeId), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.NETWORK_NEW]: () => link.request(request.networkNew(), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.JOIN_APPROVE]: (m) => link.request(request.joinApprove(m.nodeId), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.JOIN_DECLINE]: (m) => link.request(request.joinDecline(m.nodeId)),
    // Like the account's, the new password passes through once.
    [RuntimeType.ACCOUNT_PASSWORD]: (m) => link.request(request.accountPassword(m.password), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.FILES_LIST]: async () => {
      link.connect();
      const { files } = await link.request(request.filesList());
      return { files };
    },
    // Restoring a file may fetch fragments from every node: no hurry.
    [RuntimeType.FILES_DOWNLOAD]: (m) => prepareDownload(link, m.fileId),
    [RuntimeType.FILES_PREVIEW]: (m) => preparePreview(link, m.fileId),
    [RuntimeType.FILES_SEARCH]: (m) => link.request(request.filesSearch(m.query ?? {})),
    [RuntimeType.FILES_REMOVE]: (m) => link.request(request.filesRemove(m.fileId)),
    [RuntimeType.FILES_RENAME]: (m) => link.request(request.filesRename(m.fileId, m.name)),
    // Attachments are restored from the drive and the server may be slow
    // to take a large mail.
    [RuntimeType.PEOPLE_LIST]: () => link.request(request.peopleList()),
    // Sending the challenge mail waits on the SMTP server.
    [RuntimeType.PEOPLE_VERIFY]: (m) => link.request(request.peopleVerify(m.email), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.PEOPLE_RENAME]: (m) => link.request(request.peopleRename(m.email, m.name)),
    [RuntimeType.PEOPLE_BLOCK]: (m) => link.request(request.peopleBlock(m.email, m.blocked)),
    [RuntimeType.PEOPLE_REMOVE]: (m) => link.request(request.peopleRemove(m.email)),
    [RuntimeType.CHAT_LIST]: () => link.request(request.chatList()),
    [RuntimeType.CHAT_SHOW]: (m) => link.request(request.chatShow(m.conversation, m.limit)),
    [RuntimeType.CHAT_SEND]: (m) => link.request(request.chatSend(m.conversation, m.text)),
    [RuntimeType.CHAT_READ]: (m) => link.request(request.chatRead(m.conversation)),
    [RuntimeType.CHAT_GROUP_CREATE]: (m) => link.request(request.chatGroupCreate(m.title, m.members)),
    [RuntimeType.CHAT_GROUP_MEMBERS]: (m) => link.request(request.chatGroupMembers(m.conversation, m.add ?? [], m.remove ?? [])),
    // Restoring a drive file to offer it may fetch fragments from every node.
    [RuntimeType.SEND_FILE]: (m) => link.request(request.sendFile(m.to, m.fileId), SLOW_REQUEST_TIMEOUT_MS),
    [RuntimeType.SEND_LIST]: () => link.request(request.sendList()),
    [RuntimeType.SEND_ACCEPT]: (m) => link.request(request.sendAccept(m.transfer, m.to)),
    [RuntimeType.SEND_DECLINE]: (m) => link.request(request.sendDecline(m.transfer)),
    [RuntimeType.SEND_CANCEL]: (m) => link.request(request.sendCancel(m.transfer)),
    [RuntimeType.CALLS_LIST]: () => link.request(request.callsList()),
    [RuntimeType.MAIL_SEND]: (m) => link.request(request.mailSend(m), MAIL_SEND_TIMEOUT_MS),
    [RuntimeType.IMPORT_SETTINGS]: async (m) => (await link.request(request.importSettings(m.change ?? {}))).settings,
    // A one-time token for the engine's loopback sockets; only our own pages
    // ever get here (see listen), and the engine also checks their Origin.
    [RuntimeType.SOCKET_TOKEN]: async () => {
      link.connect();
      const { port, token } = await link.request(request.socketToken());
      return { port, token };
    },
  };
}


/**
 * Installs the runtime.onMessage listener for a handler map.
 * @param {Record<string, (message: any) => Promise<any>>} handlers
 */
export function listen(handlers) {
  chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
    if (!isOwnPage(sender)) return false;
    // The offscreen document answers the mesh's messages.
    if (typeof message?.type === 'string' && message.type.startsWith(MESH_PREFIX)) return false;
    const handler = handlers[message?.type];
    if (!handler) {
      sendResponse({ error: `unknown message type ${JSON.stringify(message?.type)}` });
      return false;
    }
    handler(message).then(sendResponse, (e) => sendResponse({ error: String(e?.message ?? e) }));
    return true;
  });
}
