//! Frames to other nodes without waiting on their links.
//!
//! A service that must never stall on one peer (direct send's message
//! loop answers every person's transfers) hands frames to an [`Outbox`]:
//! one bounded queue per node, drained by a task of that node's own that
//! does the waiting. A node that stops reading fills only its own queue;
//! past [`QUEUE`] frames, new ones for it are dropped — so only frames
//! their protocol repeats may go this way (offers, accepts, acks, cancels:
//! the transfer timers send them again). A queue's task ends after it has
//! been idle a while, and is made again on the next frame.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::links::Links;

/// Frames waiting per node.
pub const QUEUE: usize = 64;
/// How long a node's queue task lives with nothing to send.
const IDLE: Duration = Duration::from_secs(60);

pub struct Outbox {
    links: Arc<dyn Links>,
    queues: Mutex<HashMap<NodeId, mpsc::Sender<Frame>>>,
}

impl Outbox {
    pub fn new(links: Arc<dyn Links>) -> Outbox {
        Outbox { links, queues: Mutex::default() }
    }

    /// Queues `frame` for `to`'s link; false if it was dropped (that node's
    /// queue is full).
    pub fn send(&self, to: NodeId, frame: Frame) -> bool {
        let mut queues = crate::sync::lock(&self.queues);
        let mut frame = frame;
        for _ in 0..2 {
            let queue = queues.entry(to).or_insert_with(|| self.start(to));
            match queue.try_send(frame) {
                Ok(()) => return true,
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(node = %to, "a node's outgoing queue is full; dropped a frame it will get again");
                    return false;
                }
                // Its task went idle and ended: make a new one.
                Err(TrySendError::Closed(back)) => {
                    queues.remove(&to);
                    frame = back;
                }
            }
        }
        false
    }

    fn start(&self, to: NodeId) -> mpsc::Sender<Frame> {
        let (queue, mut frames) = mpsc::channel(QUEUE);
        let links = self.links.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = tokio::time::timeout(IDLE, frames.recv()).await {
                // A missing link loses the frame; its protocol repeats it.
                let _ = links.send_to_linked(&to, frame).await;
            }
        });
        queue
    }
}
