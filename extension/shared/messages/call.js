// Typed messages of the `/call` socket between a call page and its engine
// (native-host/src/engine/calls.rs). The engine tags what it passes on from
// another participant with the room, their node id (`from`) and address.

/**
 * From the page:
 * @typedef {{type: 'invite', room: string, members: string[], title: string}} Invite
 * @typedef {{type: 'join', room: string}} Join
 * @typedef {{type: 'present', room: string, to: string}} Present — "I am in the room" to a newcomer
 * @typedef {{type: 'signal', room: string, to: string, data: {sdp?: object, candidate?: object}}} Signal
 * @typedef {{type: 'state', room: string, data: {muted: boolean, camera: boolean}}} State
 * @typedef {{type: 'leave', room: string}} Leave
 *
 * From the engine: `hello` {node_id, email} first; `ok` {for} or `error`
 * {message} for each page message; and `join`, `present`, `signal`,
 * `state`, `leave` from others, each with {room, from, email, data}.
 */
export const CallType = {
  INVITE: 'invite',
  JOIN: 'join',
  PRESENT: 'present',
  SIGNAL: 'signal',
  STATE: 'state',
  LEAVE: 'leave',
  HELLO: 'hello',
  OK: 'ok',
  ERROR: 'error',
};
