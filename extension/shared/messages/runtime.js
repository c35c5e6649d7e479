// Typed messages from extension pages (popup, app, onboarding, offscreen)
// to the service worker, over chrome.runtime.sendMessage.

/**
 * @typedef {{type: 'get_state'}} GetState
 * @typedef {{type: 'start_engine'}} StartEngine
 * @typedef {{type: 'refresh'}} Refresh
 * @typedef {{type: 'offscreen_ready'}} OffscreenReady
 * @typedef {{type: 'account_discover', email: string, tlsCa?: string}} AccountDiscover
 * @typedef {{type: 'account_test', account: object}} AccountTest
 * @typedef {{type: 'sign_in_start', account: object, deviceName: string}} SignInStart
 * @typedef {{type: 'sign_in_again'}} SignInAgain
 * @typedef {{type: 'account_save', account: object, deviceName: string}} AccountSave
 * @typedef {{type: 'confirm_code', code: string}} ConfirmCode
 * @typedef {{type: 'node_remove', nodeId: string}} NodeRemove
 * @typedef {{type: 'network_new'}} NetworkNew
 * @typedef {{type: 'join_approve', nodeId: string}} JoinApprove
 * @typedef {{type: 'join_decline', nodeId: string}} JoinDecline
 * @typedef {{type: 'account_password', password: string}} AccountPassword
 * @typedef {{type: 'socket_token'}} SocketToken
 * @typedef {{type: 'files_list'}} FilesList
 * @typedef {{type: 'files_download', fileId: string}} FilesDownload — answered with {ticket, file} once the engine restored the file
 * @typedef {{type: 'files_preview', fileId: string}} FilesPreview — the same, the ticket for /preview/ (any byte range, for an hour after its last use)
 * @typedef {{type: 'files_remove', fileId: string}} FilesRemove
 * @typedef {{type: 'files_rename', fileId: string, name: string}} FilesRename
 * @typedef {{type: 'people_list'}} PeopleList
 * @typedef {{type: 'people_verify', email: string}} PeopleVerify
 * @typedef {{type: 'people_rename', email: string, name: string}} PeopleRename
 * @typedef {{type: 'people_block', email: string, blocked: boolean}} PeopleBlock
 * @typedef {{type: 'people_remove', email: string}} PeopleRemove
 * @typedef {{type: 'chat_list'}} ChatList
 * @typedef {{type: 'chat_show', conversation: string, limit?: number}} ChatShow
 * @typedef {{type: 'chat_send', conversation: string, text: string}} ChatSend
 * @typedef {{type: 'chat_read', conversation: string}} ChatRead
 * @typedef {{type: 'chat_group_create', title: string, members: string[]}} ChatGroupCreate
 * @typedef {{type: 'chat_group_members', conversation: string, add: string[], remove: string[]}} ChatGroupMembers
 * @typedef {{type: 'send_file', to: string, fileId: string}} SendFile
 * @typedef {{type: 'send_list'}} SendList
 * @typedef {{type: 'send_accept', transfer: string, to: 'drive' | 'downloads'}} SendAccept
 * @typedef {{type: 'send_decline', transfer: string}} SendDecline
 * @typedef {{type: 'send_cancel', transfer: string}} SendCancel
 * @typedef {{type: 'calls_list'}} CallsList
 * @typedef {{type: 'mail_send', to: string[], subject: string, body: string, attachments: string[]}} MailSend
 */
export const RuntimeType = {
  GET_STATE: 'get_state',
  START_ENGINE: 'start_engine',
  REFRESH: 'refresh',
  OFFSCREEN_READY: 'offscreen_ready',
  ACCOUNT_DISCOVER: 'account_discover',
  SIGN_IN_START: 'sign_in_start',
  SIGN_IN_AGAIN: 'sign_in_again',
  ACCOUNT_TEST: 'account_test',
  ACCOUNT_SAVE: 'account_save',
  CONFIRM_CODE: 'confirm_code',
  NODE_REMOVE: 'node_remove',
  NETWORK_NEW: 'network_new',
  JOIN_APPROVE: 'join_approve',
  JOIN_DECLINE: 'join_decline',
  ACCOUNT_PASSWORD: 'account_password',
  SOCKET_TOKEN: 'socket_token',
  FILES_LIST: 'files_list',
  FILES_SEARCH: 'files_search',
  FILES_DOWNLOAD: 'files_download',
  FILES_PREVIEW: 'files_preview',
  FILES_REMOVE: 'files_remove',
  FILES_RENAME: 'files_rename',
  MAIL_SEND: 'mail_send',
  IMPORT_SETTINGS: 'import_settings',
  PEOPLE_LIST: 'people_list',
  PEOPLE_VERIFY: 'people_verify',
  PEOPLE_RENAME: 'people_rename',
  PEOPLE_BLOCK: 'people_block',
  PEOPLE_REMOVE: 'people_remove',
  CHAT_LIST: 'chat_list',
  CHAT_SHOW: 'chat_show',
  CHAT_SEND: 'chat_send',
  CHAT_READ: 'chat_read',
  CHAT_GROUP_CREATE: 'chat_group_create',
  CHAT_GROUP_MEMBERS: 'chat_group_members',
  SEND_FILE: 'send_file',
  SEND_LIST: 'send_list',
  SEND_ACCEPT: 'send_accept',
  SEND_DECLINE: 'send_decline',
  SEND_CANCEL: 'send_cancel',
  CALLS_LIST: 'calls_list',
};

/**
 * Messages from extension pages to the offscreen document (the mesh). The
 * service worker leaves every type with this prefix to the offscreen.
 * @typedef {{type: 'mesh.state'}} MeshState
 * @typedef {{type: 'mesh.echo', peer: string, size: number}} MeshEcho
 * @typedef {{type: 'mesh.bench', peer: string, bytes: number, mode: 'raw' | 'mesh' | 'loopback'}} MeshBench
 */
export const MESH_PREFIX = 'mesh.';
export const MeshType = {
  STATE: 'mesh.state',
  ECHO: 'mesh.echo',
  BENCH: 'mesh.bench',
};

/**
 * Sends a message to the service worker and returns its answer, throwing
 * the worker's error as an Error.
 * @param {{type: string}} message
 */
export async function callWorker(message) {
  const answer = await chrome.runtime.sendMessage(message);
  if (answer && answer.error) throw new Error(answer.error);
  return answer;
}
