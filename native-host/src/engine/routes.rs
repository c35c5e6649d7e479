//! Which frames each service takes from the mesh, from which links, with
//! what bound and what happens past it; and the tasks that hand them on.
//!
//! | route | from | per peer | past the quota |
//! | --- | --- | --- | --- |
//! | `drive.` | members | 64 | the link waits (catalogs come in bursts; puts wait for answers) |
//! | `send.` | other people | 64 | the link waits (four windows of chunks; handled in order) |
//! | `chat.` | anyone | 64 | dropped (messages and receipts are sent again until answered) |
//! | `call.` | other people | 32 | dropped (signaling is repeated by the page) |
//! | `people.` | anyone | 8 | dropped (a challenge is asked again) |
//! | `node.` | members | 4 | dropped (the password is handed again at every link-up; the import's state every few seconds and at link-up) |
//!
//! Every frame but `send.` runs in a task of its own; the frame's slot in
//! its route lives in that task, so the quotas bound the tasks too.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::Receiver;

use super::Engine;
/// Where members hand each other the mail password the owner gave.
pub const PASSWORD_TOPIC: &str = "node.password";
use crate::mesh::inbound::{Admit, Inbound, Overflow, RouteSpec};
use crate::mesh::Mesh;

pub const DRIVE: RouteSpec =
    RouteSpec { prefix: "drive.", admit: Admit::Members, overflow: Overflow::Wait, per_peer: 64 };
pub const SEND: RouteSpec = RouteSpec { prefix: "send.", admit: Admit::Others, overflow: Overflow::Wait, per_peer: 64 };
pub const CHAT: RouteSpec = RouteSpec { prefix: "chat.", admit: Admit::Anyone, overflow: Overflow::Drop, per_peer: 64 };
pub const CALL: RouteSpec = RouteSpec { prefix: "call.", admit: Admit::Others, overflow: Overflow::Drop, per_peer: 32 };
pub const PEOPLE: RouteSpec =
    RouteSpec { prefix: "people.", admit: Admit::Anyone, overflow: Overflow::Drop, per_peer: 8 };
pub const NODE: RouteSpec = RouteSpec { prefix: "node.", admit: Admit::Members, overflow: Overflow::Drop, per_peer: 4 };

/// The receivers of every route, registered before any link comes up.
pub struct Routes {
    pub drive: Receiver<Inbound>,
    pub send: Receiver<Inbound>,
    pub chat: Receiver<Inbound>,
    pub call: Receiver<Inbound>,
    pub people: Receiver<Inbound>,
    pub node: Receiver<Inbound>,
}

pub fn register(mesh: &Mesh) -> Routes {
    Routes {
        drive: mesh.route(DRIVE),
        send: mesh.route(SEND),
        chat: mesh.route(CHAT),
        call: mesh.route(CALL),
        people: mesh.route(PEOPLE),
        node: mesh.route(NODE),
    }
}

/// Hands each route's frames to its service until the engine stops;
/// `send.` goes to `DirectSend::run`, which takes them in order (and runs
/// the transfers' timers).
pub async fn serve(engine: Arc<Engine>, routes: Routes) {
    let Routes { drive, send, chat, call, people, node } = routes;
    tokio::join!(
        engine.sends.clone().run(send),
        each_in_a_task(&engine, drive, |engine, mut frame| async move {
            let payload = std::mem::take(&mut frame.payload);
            engine.drive_net.on_message(frame.from, &frame.topic, payload).await;
        }),
        each_in_a_task(&engine, chat, |engine, frame| async move {
            engine.chat.on_frame(frame.from, frame.member, &frame.topic, &frame.payload).await;
        }),
        each_in_a_task(&engine, call, |engine, frame| async move {
            engine.calls.on_frame(frame.from, &frame.payload);
        }),
        each_in_a_task(&engine, people, |engine, frame| async move {
            engine.on_people_message(frame.from, &frame.topic, &frame.payload).await;
        }),
        each_in_a_task(&engine, node, |engine, frame| async move {
            if frame.topic == super::import::TOPIC {
                engine.import.on_state(frame.from, &frame.payload).await;
            } else if frame.topic == PASSWORD_TOPIC {
                if let Err(e) = engine.node.on_password_update(&frame.payload).await {
                    tracing::info!(from = %frame.from, "did not take a new mail password: {e}");
                }
            }
        }),
    );
}

async fn each_in_a_task<F, H>(engine: &Arc<Engine>, mut frames: Receiver<Inbound>, handle: H)
where
    H: Fn(Arc<Engine>, Inbound) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    while let Some(frame) = frames.recv().await {
        tokio::spawn(handle(engine.clone(), frame));
    }
}
