// Typed messages between the service worker and the native host (engine).
// Mirrors the mailmesh-api crate (api/src): api/tests/extension_messages.rs
// fails when a request or reply there has no counterpart here.

/** Bumped with api::PROTOCOL_VERSION when a message changes incompatibly. */
export const PROTOCOL_VERSION = 1;

/** The native host's registered name. */
export const HOST_NAME = 'org.mailmesh.host';

/**
 * Requests the service worker may send. Each gets an `id` added by the link.
 * @typedef {{type: 'hello', client: string, version: string}} HelloRequest
 * @typedef {{type: 'status'}} StatusRequest
 * @typedef {{type: 'ping'}} PingRequest
 * @typedef {{type: 'start_engine'}} StartEngineRequest
 * @typedef {{host: string, port: number, security: 'tls' | 'starttls' | 'plain'}} MailServer
 * @typedef {{email: string, imap: MailServer, smtp: MailServer, user: string, password: string,
 *   tls_ca?: string | null, accept_invalid_certs?: boolean}} AccountInput
 * @typedef {{type: 'account_test', account: AccountInput}} AccountTestRequest
 * @typedef {{type: 'account_save', account: AccountInput, device_name?: string}} AccountSaveRequest
 * @typedef {{type: 'confirm_code', code: string}} ConfirmCodeRequest
 * @typedef {HelloRequest | StatusRequest | PingRequest | StartEngineRequest | AccountTestRequest
 *   | AccountSaveRequest | ConfirmCodeRequest} NativeRequest
 */
export const request = {
  /** @returns {HelloRequest} */
  hello: (client, version) => ({ type: 'hello', client, version }),
  /** @returns {StatusRequest} */
  status: () => ({ type: 'status' }),
  /** @returns {PingRequest} */
  ping: () => ({ type: 'ping' }),
  /** @returns {StartEngineRequest} */
  startEngine: () => ({ type: 'start_engine' }),
  /** @returns {{type: 'stop'}} stops the engine (`mailmesh stop`) */
  stop: () => ({ type: 'stop' }),
  /** @returns {AccountTestRequest} */
  accountTest: (account) => ({ type: 'account_test', account }),
  /** @returns {{type: 'account_discover', email: string, tls_ca: string | null}} finds its servers */
  accountDiscover: (email, tlsCa) => ({ type: 'account_discover', email, tls_ca: tlsCa || null }),
  /** @returns {{type: 'sign_in_start', account: object, device_name: string, new_network: boolean}} the URL to sign in at (OAuth 2) */
  signInStart: (account, deviceName, newNetwork = false) =>
    ({ type: 'sign_in_start', account, device_name: deviceName, new_network: newNetwork }),
  /** @returns {{type: 'sign_in_again'}} the URL to sign the saved account in again */
  signInAgain: () => ({ type: 'sign_in_again' }),
  /** @returns {AccountSaveRequest} */
  accountSave: (account, deviceName) => ({ type: 'account_save', account, device_name: deviceName }),
  /** @returns {ConfirmCodeRequest} */
  confirmCode: (code) => ({ type: 'confirm_code', code }),
  /** @returns {{type: 'node_remove', node_id: string}} */
  nodeRemove: (nodeId) => ({ type: 'node_remove', node_id: nodeId }),
  /** @returns {{type: 'network_new'}} a new network instead of joining the one found */
  networkNew: () => ({ type: 'network_new' }),
  /** @returns {{type: 'join_approve', node_id: string}} this device mails the code for it */
  joinApprove: (nodeId) => ({ type: 'join_approve', node_id: nodeId }),
  /** @returns {{type: 'join_decline', node_id: string}} */
  joinDecline: (nodeId) => ({ type: 'join_decline', node_id: nodeId }),
  /** @returns {{type: 'account_password', password: string}} the new mail password, tried first */
  accountPassword: (password) => ({ type: 'account_password', password }),
  /** @returns {{type: 'socket_token'}} */
  socketToken: () => ({ type: 'socket_token' }),
  /** @returns {{type: 'files_list'}} */
  filesList: () => ({ type: 'files_list' }),
  /**
   * @param {{text?: string, from?: string, kind?: string, since_ms?: number, until_ms?: number,
   *   sort?: 'date'|'name'|'size', reverse?: boolean, offset?: number, limit?: number}} query
   * @returns {{type: 'files_search'}} a page of the files that match, in order
   */
  filesSearch: (query = {}) => ({ type: 'files_search', ...query }),
  /** @returns {{type: 'files_add', path: string}} a file on the engine's disk (pages upload over /bulk) */
  filesAdd: (path) => ({ type: 'files_add', path }),
  /** @returns {{type: 'files_get', file_id: string, path: string}} restores to the engine's disk */
  filesGet: (fileId, path) => ({ type: 'files_get', file_id: fileId, path }),
  /** @returns {{type: 'files_repair'}} scrubs and repairs now */
  filesRepair: () => ({ type: 'files_repair' }),
  /** @returns {{type: 'mail_sync'}} imports new mail's attachments now */
  mailSync: () => ({ type: 'mail_sync' }),
  /**
   * @param {{budget_mb?: number, folders?: string[], since?: string, max_attachment_mb?: number,
   *   inline_images_under_kb?: number}} change what to change (what is left out stays)
   * @returns {{type: 'import_settings'}} changes and reads how the mail import behaves
   */
  importSettings: (change = {}) => ({ type: 'import_settings', ...change }),
  /** @returns {{type: 'files_remove', file_id: string}} */
  filesRemove: (fileId) => ({ type: 'files_remove', file_id: fileId }),
  /** @returns {{type: 'files_rename', file_id: string, name: string}} */
  filesRename: (fileId, name) => ({ type: 'files_rename', file_id: fileId, name }),
  /** @returns {{type: 'people_list'}} */
  peopleList: () => ({ type: 'people_list' }),
  /** @returns {{type: 'people_verify', email: string}} */
  peopleVerify: (email) => ({ type: 'people_verify', email }),
  /** @returns {{type: 'people_rename', email: string, name: string}} */
  peopleRename: (email, name) => ({ type: 'people_rename', email, name }),
  /** @returns {{type: 'people_block', email: string, blocked: boolean}} */
  peopleBlock: (email, blocked) => ({ type: 'people_block', email, blocked }),
  /** @returns {{type: 'people_remove', email: string}} */
  peopleRemove: (email) => ({ type: 'people_remove', email }),
  /** @returns {{type: 'chat_list'}} */
  chatList: () => ({ type: 'chat_list' }),
  /** @returns {{type: 'chat_show', conversation: string, limit?: number}} a conversation id, or an address; its newest `limit` messages (100 if left out) */
  chatShow: (conversation, limit) => ({ type: 'chat_show', conversation, ...(limit ? { limit } : {}) }),
  /** @returns {{type: 'chat_send', conversation: string, text: string}} */
  chatSend: (conversation, text) => ({ type: 'chat_send', conversation, text }),
  /** @returns {{type: 'chat_read', conversation: string}} */
  chatRead: (conversation) => ({ type: 'chat_read', conversation }),
  /** @returns {{type: 'chat_group_create', title: string, members: string[]}} */
  chatGroupCreate: (title, members) => ({ type: 'chat_group_create', title, members }),
  /** @returns {{type: 'chat_group_members', conversation: string, add: string[], remove: string[]}} */
  chatGroupMembers: (conversation, add, remove) => ({ type: 'chat_group_members', conversation, add, remove }),
  /** @returns {{type: 'send_file', to: string, file_id: string}} a drive file to a person */
  sendFile: (to, fileId) => ({ type: 'send_file', to, file_id: fileId }),
  /** @returns {{type: 'send_list'}} */
  sendList: () => ({ type: 'send_list' }),
  /** @returns {{type: 'send_accept', transfer: string, to: 'drive' | 'downloads'}} */
  sendAccept: (transfer, to) => ({ type: 'send_accept', transfer, to }),
  /** @returns {{type: 'send_decline', transfer: string}} */
  sendDecline: (transfer) => ({ type: 'send_decline', transfer }),
  /** @returns {{type: 'send_cancel', transfer: string}} */
  sendCancel: (transfer) => ({ type: 'send_cancel', transfer }),
  /** @returns {{type: 'calls_list'}} */
  callsList: () => ({ type: 'calls_list' }),
  /** @returns {{type: 'mail_send', to: string[], subject: string, body: string, attachments: string[]}} */
  mailSend: ({ to, subject, body, attachments }) => ({ type: 'mail_send', to, subject, body, attachments }),
};

/**
 * Replies and events from the host.
 * @typedef {{type: 'hello', host_version: string, core_version: string, protocol: number}} HelloReply
 * @typedef {{type: 'status', node_id: string, fingerprint: string, public_key: string,
 *   x25519_public_key: string, device_name: string, version: string, core_version: string,
 *   protocol: number, home: string, engine_pid: number, started_at: number}} StatusReply
 * @typedef {{type: 'error', code: string, message: string}} ErrorReply
 * @typedef {{type: 'engine_state', state: 'up' | 'down', message: string}} EngineStateEvent
 * @typedef {{ok: boolean, code?: string, message: string}} Check
 * @typedef {{type: 'account_test', imap: Check, smtp: Check}} AccountTestReply
 * @typedef {{type: 'servers_found', provider: string | null, imap: object | null, smtp: object | null,
 *   user: string | null, source: string | null, advice: string | null}} ServersFoundReply
 * @typedef {{type: 'enrollment', state: 'none' | 'awaiting_confirmation' | 'enrolled',
 *   email: string | null, network_id: string | null}} EnrollmentReply
 * @typedef {{type: 'status_changed'}} StatusChangedEvent
 * @typedef {{type: 'peers_changed'}} PeersChangedEvent
 * @typedef {{type: 'socket_token', port: number, token: string}} SocketTokenReply
 * @typedef {{id: string, direction: 'in' | 'out', peer: string, name: string, size: number, done: number,
 *   state: 'offered' | 'active' | 'done' | 'declined' | 'cancelled' | 'failed', detail: string,
 *   rate_bps: number, eta_secs: number | null, saved_as: string | null}} TransferView
 * @typedef {{room: string, title: string, members: string[], invited_by: string, at: number,
 *   joined: boolean}} RoomView
 * @typedef {{type: 'chat_changed'}} ChatChangedEvent — `chat_list` has the new view
 * @typedef {{id: string, kind: 'direct' | 'group', title: string, members: string[], unread: number,
 *   last_at: number, last_text: string}} ConversationView
 * @typedef {{id: string, author: string, sent_at: number, kind: 'text' | 'members', text: string,
 *   verified: boolean, pending: string[], delivered: string[], read: string[]}} MessageView
 * @typedef {{id: string, fingerprint: string, name: string, email: string, member: boolean,
 *   online: boolean, last_seen: number | null, rtt_ms: number | null,
 *   path: 'webrtc' | 'relay' | null}} PeerView
 */
export const reply = {
  HELLO: 'hello',
  STATUS: 'status',
  PONG: 'pong',
  ERROR: 'error',
  ENGINE_STATE: 'engine_state',
  ACCOUNT_TEST: 'account_test',
  SERVERS_FOUND: 'servers_found',
  SIGN_IN_URL: 'sign_in_url',
  ENROLLMENT: 'enrollment',
  STATUS_CHANGED: 'status_changed',
  PEERS_CHANGED: 'peers_changed',
  FILES_CHANGED: 'files_changed',
  CHAT_CHANGED: 'chat_changed',
  TRANSFERS_CHANGED: 'transfers_changed',
  CALLS_CHANGED: 'calls_changed',
  FILES: 'files',
  FILES_PAGE: 'files_page',
  FILE: 'file',
  SOCKET_TOKEN: 'socket_token',
  STOPPING: 'stopping',
  REMOVAL_REQUESTED: 'removal_requested',
  MAIL_SYNCED: 'mail_synced',
  IMPORT_SETTINGS: 'import_settings',
  PEOPLE: 'people',
  CONVERSATIONS: 'conversations',
  CONVERSATION: 'conversation',
  CHAT_SENT: 'chat_sent',
  CHAT_DONE: 'chat_done',
  CALLS: 'calls',
  TRANSFERS: 'transfers',
  TRANSFER: 'transfer',
  MAIL_SENT: 'mail_sent',
};
