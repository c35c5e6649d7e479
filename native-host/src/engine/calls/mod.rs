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
//!
//! [`CallNet`] is a service: it owns the rooms and the pages present
//! (behind a private lock held only for in-memory work), reads the book
//! from the [`PeopleHandle`] and the owner's address from the
//! [`StandingWatch`], and sends signaling through an [`Outbox`] so that a
//! person whose node stops reading holds up no other. The `/call` socket
//! (`serve_call`) is its only client.

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

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

use super::people::trust;
use super::people::PeopleHandle;
use super::sockets::{upgrade_admitted, TokenQuery};
use super::standing::StandingWatch;
use super::Engine;
use crate::api::{Event, RoomView};
use crate::clock::now_ms;
use crate::mesh::links::Links;
use crate::mesh::outbox::Outbox;

pub const TOPIC: &str = "call.signal";
/// Largest signaling message (an SDP with many candidates fits easily).
const MAX_SIGNAL: usize = 64 * 1024;
/// Most members of a room.
const MAX_MEMBERS: usize = 16;
/// An invitation not joined within this long is dropped from the list.
const INVITE_TTL_MS: u64 = 10 * 60 * 1000;
/// Most rooms kept at once; past it, new invitations are ignored until old
/// ones expire.
const MAX_ROOMS: usize = 64;

/// What the engine hands the call pages: signaling from a peer, tagged
/// with the room and the node it came from.
#[derive(Debug, Clone)]
pub struct ToPage {
    room: String,
    message: Value,
}

#[derive(Default)]
struct Calls {
    rooms: HashMap<String, RoomView>,
    /// Pages in each room, counted (a page may reload).
    present: HashMap<String, usize>,
}

impl Calls {
    /// Forgets invitations nobody joined in time.
    fn expire(&mut self, now: u64) {
        let Calls { rooms, present } = self;
        rooms.retain(|id, r| present.get(id).is_some_and(|n| *n > 0) || now.saturating_sub(r.at) < INVITE_TTL_MS);
    }
}

pub struct CallNet {
    me: NodeId,
    calls: Mutex<Calls>,
    to_pages: broadcast::Sender<ToPage>,
    links: Arc<dyn Links>,
    outbox: Outbox,
    people: PeopleHandle,
    standing: StandingWatch,
    events: broadcast::Sender<Event>,
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

impl CallNet {
    pub fn new(
        me: NodeId,
        links: Arc<dyn Links>,
        people: PeopleHandle,
        standing: StandingWatch,
        events: broadcast::Sender<Event>,
    ) -> CallNet {
        CallNet {
            me,
            calls: Mutex::default(),
            to_pages: broadcast::channel(256).0,
            outbox: Outbox::new(links.clone()),
            links,
            people,
            standing,
            events,
        }
    }

    fn calls(&self) -> MutexGuard<'_, Calls> {
        crate::sync::lock(&self.calls)
    }

    fn my_email(&self) -> Option<String> {
        self.standing.borrow().address.clone()
    }

    fn changed(&self) {
        let _ = self.events.send(Event::CallsChanged);
    }

    /// Signaling for the pages, tagged with its room.
    pub fn subscribe(&self) -> broadcast::Receiver<ToPage> {
        self.to_pages.subscribe()
    }

    /// Rooms we were invited to or started, newest first.
    pub fn list(&self) -> Vec<RoomView> {
        let mut calls = self.calls();
        calls.expire(now_ms());
        let Calls { rooms, present } = &*calls;
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
    /// (or to one node), without waiting on any link.
    fn signal(&self, signal: &Signal, to: Option<NodeId>) {
        let payload = match serde_json::to_vec(signal) {
            Ok(p) => p,
            Err(_) => return,
        };
        let targets: Vec<NodeId> = match to {
            Some(node) => vec![node],
            None => {
                let members = self.calls().rooms.get(&signal.room).map(|r| r.members.clone()).unwrap_or_default();
                let (trusted, _) = trust::linked_people(&self.people.book(), self.links.linked_strangers());
                members.iter().filter_map(|m| trusted.get(m)).flatten().copied().collect()
            }
        };
        for node in targets {
            self.outbox.send(node, Frame::Data { topic: TOPIC.into(), payload: payload.clone() });
        }
    }

    /// A `call.signal` frame from another person's node.
    pub fn on_frame(&self, from: NodeId, payload: &[u8]) {
        let Some((email, verified)) = trust::sender_of(&self.people.book(), &from) else { return };
        let Some(me) = self.my_email() else { return };
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
            calls.expire(now_ms());
            if !calls.rooms.contains_key(&signal.room) && calls.rooms.len() < MAX_ROOMS {
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
                self.changed();
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
        let _ = self.to_pages.send(ToPage { room: signal.room, message });
    }

    /// One message from a call page.
    pub fn on_page_message(&self, message: Value, rooms: &mut BTreeSet<String>) -> Result<Value, String> {
        let kind = message.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let room = message.get("room").and_then(Value::as_str).unwrap_or_default().to_string();
        if room.is_empty() || room.len() > 64 {
            return Err("a call message needs a room".into());
        }
        match kind.as_str() {
            "invite" => {
                let me = self.my_email().ok_or("no mail account is set up")?;
                let mut members: BTreeSet<String> = message
                    .get("members")
                    .and_then(Value::as_array)
                    .map(|m| m.iter().filter_map(Value::as_str).map(normalize_email).collect())
                    .unwrap_or_default();
                members.insert(me.clone());
                if members.len() > MAX_MEMBERS {
                    return Err(format!("a call has at most {MAX_MEMBERS} people"));
                }
                let book = self.people.book();
                for member in members.iter().filter(|m| **m != me) {
                    trust::check_verified(&book, member).map_err(|e| e.to_string())?;
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
                {
                    let mut calls = self.calls();
                    calls.expire(now_ms());
                    if calls.rooms.len() >= MAX_ROOMS && !calls.rooms.contains_key(&room) {
                        return Err("too many calls at once; end one first".into());
                    }
                    calls.rooms.insert(room.clone(), view);
                }
                let signal = Signal {
                    room,
                    kind: "invite".into(),
                    title,
                    members: members.into_iter().collect(),
                    data: Value::Null,
                };
                self.signal(&signal, None);
                self.changed();
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
                );
                self.changed();
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
                self.signal(&signal, to);
                if kind == "leave" {
                    self.left(&room);
                    rooms.remove(&room);
                }
            }
            other => return Err(format!("unknown call message {other:?}")),
        }
        Ok(json!({"type": "ok", "for": kind, "room": message.get("room")}))
    }

    /// A page went away from `room` without saying so: the others are told.
    pub fn page_left(&self, room: &str) {
        let signal = Signal {
            room: room.to_string(),
            kind: "leave".into(),
            title: String::new(),
            members: vec![],
            data: Value::Null,
        };
        self.signal(&signal, None);
        self.left(room);
    }

    fn left(&self, room: &str) {
        if let Some(n) = self.calls().present.get_mut(room) {
            *n = n.saturating_sub(1);
        }
        self.changed();
    }

    pub fn node_id(&self) -> NodeId {
        self.me
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
    let calls = &engine.calls;
    let mut from_peers = calls.subscribe();
    let me = calls.my_email().unwrap_or_default();
    let hello = json!({"type": "hello", "node_id": calls.node_id().to_string(), "email": me});
    if tx.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    let mut rooms: BTreeSet<String> = BTreeSet::new();
    loop {
        tokio::select! {
            incoming = rx.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { break };
                let answer = match serde_json::from_str::<Value>(&text) {
                    Ok(message) => calls.on_page_message(message, &mut rooms),
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
        calls.page_left(&room);
    }
}
