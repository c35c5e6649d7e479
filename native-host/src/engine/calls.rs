//! Calls (issue 7): signaling for audio/video rooms between people. Media
//! flows browser to browser (WebRTC, one connection per pair of
//! participants); the engines only carry the signaling, over the links
//! whose handshakes proved both nodes' keys, and only between verified
//! people. The SDP, with its DTLS fingerprint, therefore reaches the other
//! page exactly as the other page wrote it: nobody in between can swap it.
//!
//! ```text
//! call page ─ /call socket ─▶ engine ═ call.signal over the LAN link ═▶ engine ─ /call ─▶ call page
//! ```
//!
//! A room is named by a random id and lists its members' addresses. The
//! caller `invite`s; each page that `join`s says so to every member's
//! verified nodes, those already in answer `present`, and of each pair the
//! node with the smaller id makes the WebRTC offer.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::people::normalize_email;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::sockets::{upgrade_admitted, TokenQuery};
use super::Engine;
use crate::api::{Event, RoomView};
use crate::clock::now_ms;

pub const TOPIC: &str = "call.signal";
/// Largest signaling message (an SDP with many candidates fits easily).
const MAX_SIGNAL: usize = 64 * 1024;
/// Most members of a room.
const MAX_MEMBERS: usize = 16;
/// An invitation not joined within this long is dropped from the list.
const INVITE_TTL_MS: u64 = 10 * 60 * 1000;

/// What the engine hands the call pages: signaling from a peer, tagged
/// with the room and the node it came from.
#[derive(Debug, Clone)]
pub struct ToPage {
    room: String,
    message: Value,
}

pub struct Calls {
    rooms: HashMap<String, RoomView>,
    /// Pages in each room, counted (a page may reload).
    present: HashMap<String, usize>,
    pub to_pages: broadcast::Sender<ToPage>,
}

impl Default for Calls {
    fn default() -> Calls {
        Calls { rooms: HashMap::new(), present: HashMap::new(), to_pages: broadcast::channel(256).0 }
    }
}

/// One signaling message between engines.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signal {
    room: String,
    /// `invite`, `join`, `present`, `signal`, `state` or `leave`.
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    data: Value,
}

impl Engine {
    fn calls(&self) -> MutexGuard<'_, Calls> {
        crate::sync::lock(&self.calls)
    }

    /// Rooms we were invited to or started, newest first.
    pub fn calls_list(&self) -> Vec<RoomView> {
        let mut calls = self.calls();
        let now = now_ms();
        let Calls { rooms, present, .. } = &mut *calls;
        rooms.retain(|id, r| present.get(id).is_some_and(|n| *n > 0) || now.saturating_sub(r.at) < INVITE_TTL_MS);
        let mut list: Vec<RoomView> = rooms
            .values()
            .cloned()
            .map(|mut r| {
                r.joined = present.get(&r.room).is_some_and(|n| *n > 0);
                r
            })
            .collect();
        list.sort_by_key(|r| std::cmp::Reverse(r.at));
        list
    }

    /// Sends a signal to every verified linked node of the room's members
    /// (or to one node).
    async fn signal(&self, signal: &Signal, to: Option<NodeId>) {
        let payload = match serde_json::to_vec(signal) {
            Ok(p) => p,
            Err(_) => return,
        };
        let targets: Vec<NodeId> = match to {
            Some(node) => vec![node],
            None => {
                let members = self.calls().rooms.get(&signal.room).map(|r| r.members.clone()).unwrap_or_default();
                let (trusted, _) = self.linked_people();
                members.iter().filter_map(|m| trusted.get(m)).flatten().copied().collect()
            }
        };
        for node in targets {
            let frame = Frame::Data { topic: TOPIC.into(), payload: payload.clone() };
            let _ = self.mesh.send_to_linked(&node, frame).await;
        }
    }

    /// A `call.signal` frame from another person's node.
    pub async fn on_call_frame(&self, from: NodeId, payload: &[u8]) {
        let Some((email, verified)) = self.sender_of(&from) else { return };
        let Ok(me) = self.my_email().await else { return };
        if !verified || payload.len() > MAX_SIGNAL {
            tracing::info!(node = %from, "ignoring call signaling from a node that is not verified");
            return;
        }
        let Ok(signal) = serde_json::from_slice::<Signal>(payload) else { return };
        if signal.room.len() > 64 {
            return;
        }
        if signal.kind == "invite" {
            let members: BTreeSet<String> = signal.members.iter().map(|m| normalize_email(m)).collect();
            if !members.contains(&me) || !members.contains(&email) || members.len() > MAX_MEMBERS {
                return;
            }
            let mut calls = self.calls();
            if !calls.rooms.contains_key(&signal.room) {
                let room = RoomView {
                    room: signal.room.clone(),
                    title: signal.title.chars().take(200).collect(),
                    members: members.into_iter().collect(),
                    invited_by: email.clone(),
                    at: now_ms(),
                    joined: false,
                };
                calls.rooms.insert(signal.room.clone(), room);
                drop(calls);
                tracing::info!(from = %email, "invited to a call");
                self.notify(Event::CallsChanged);
            }
            return;
        }
        // Everything else only for a room we know, from one of its members.
        let member = self.calls().rooms.get(&signal.room).is_some_and(|r| r.members.contains(&email));
        if !member {
            return;
        }
        let message = json!({
            "type": signal.kind, "room": signal.room, "from": from.to_string(), "email": email, "data": signal.data,
        });
        let _ = self.calls().to_pages.send(ToPage { room: signal.room, message });
    }

    /// One message from a call page.
    async fn on_page_message(&self, message: Value, rooms: &mut BTreeSet<String>) -> Result<Value, String> {
        let kind = message.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let room = message.get("room").and_then(Value::as_str).unwrap_or_default().to_string();
        if room.is_empty() || room.len() > 64 {
            return Err("a call message needs a room".into());
        }
        match kind.as_str() {
            "invite" => {
                let me = self.my_email().await.map_err(|e| e.to_string())?;
                let mut members: BTreeSet<String> = message
                    .get("members")
                    .and_then(Value::as_array)
                    .map(|m| m.iter().filter_map(Value::as_str).map(normalize_email).collect())
                    .unwrap_or_default();
                members.insert(me.clone());
                if members.len() > MAX_MEMBERS {
                    return Err(format!("a call has at most {MAX_MEMBERS} people"));
                }
                for member in members.iter().filter(|m| **m != me) {
                    self.check_verified(member).map_err(|e| e.to_string())?;
                }
                let title = message.get("title").and_then(Value::as_str).unwrap_or_default().to_string();
                let view = RoomView {
                    room: room.clone(),
                    title: title.clone(),
                    members: members.iter().cloned().collect(),
                    invited_by: me,
                    at: now_ms(),
                    joined: false,
                };
                self.calls().rooms.insert(room.clone(), view);
                let signal = Signal {
                    room,
                    kind: "invite".into(),
                    title,
                    members: members.into_iter().collect(),
                    data: Value::Null,
                };
                self.signal(&signal, None).await;
                self.notify(Event::CallsChanged);
            }
            "join" => {
                if !self.calls().rooms.contains_key(&room) {
                    return Err("no such call (it may have ended); ask to be invited again".into());
                }
                if rooms.insert(room.clone()) {
                    *self.calls().present.entry(room.clone()).or_default() += 1;
                }
                self.signal(
                    &Signal { room, kind: "join".into(), title: String::new(), members: vec![], data: Value::Null },
                    None,
                )
                .await;
                self.notify(Event::CallsChanged);
            }
            "present" | "signal" | "state" | "leave" => {
                if !rooms.contains(&room) {
                    return Err("join the call first".into());
                }
                let to = match message.get("to").and_then(Value::as_str) {
                    Some(node) => Some(node.parse::<NodeId>().map_err(|_| "not a node id".to_string())?),
                    None => None,
                };
                let data = message.get("data").cloned().unwrap_or(Value::Null);
                let signal =
                    Signal { room: room.clone(), kind: kind.clone(), title: String::new(), members: vec![], data };
                self.signal(&signal, to).await;
                if kind == "leave" {
                    self.page_left(&room);
                    rooms.remove(&room);
                }
            }
            other => return Err(format!("unknown call message {other:?}")),
        }
        Ok(json!({"type": "ok", "for": kind, "room": message.get("room")}))
    }

    fn page_left(&self, room: &str) {
        let mut calls = self.calls();
        if let Some(n) = calls.present.get_mut(room) {
            *n = n.saturating_sub(1);
        }
        drop(calls);
        self.notify(Event::CallsChanged);
    }
}

pub async fn call_socket(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade_admitted(engine, &headers, query.token(), upgrade, MAX_SIGNAL, serve_call)
}

/// One call page: its messages go out as signals; signals for the rooms
/// it joined come back. Closing the socket leaves those rooms.
async fn serve_call(socket: WebSocket, engine: Arc<Engine>) {
    let (mut tx, mut rx) = socket.split();
    let mut from_peers = engine.calls().to_pages.subscribe();
    let me = engine.my_email().await.unwrap_or_default();
    let hello = json!({"type": "hello", "node_id": engine.secrets.node_id().to_string(), "email": me});
    if tx.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    let mut rooms: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            incoming = rx.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { break };
                let answer = match serde_json::from_str::<Value>(&text) {
                    Ok(message) => engine.on_page_message(message, &mut rooms).await,
                    Err(e) => Err(format!("not JSON: {e}")),
                };
                let answer = answer.unwrap_or_else(|message| json!({"type": "error", "message": message}));
                if tx.send(Message::Text(answer.to_string().into())).await.is_err() {
                    break;
                }
            }
            event = from_peers.recv() => match event {
                Ok(ToPage { room, message }) if rooms.contains(&room) => {
                    if tx.send(Message::Text(message.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = engine.shutdown.cancelled() => break,
        }
    }
    // A page that went away without saying so has left.
    for room in rooms {
        let signal = Signal {
            room: room.clone(),
            kind: "leave".into(),
            title: String::new(),
            members: vec![],
            data: Value::Null,
        };
        engine.signal(&signal, None).await;
        engine.page_left(&room);
    }
}
