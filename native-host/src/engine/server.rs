//! The control socket server: one task per client connection, one JSON
//! request per line, one JSON reply per line carrying the request's id.
//!
//! Each request runs in a task of its own and its reply goes out when it is
//! ready, so a slow `mail_send` or `people_verify` never holds up `status`
//! or the events pushed on the same connection. One loop per connection
//! reads requests, writes replies and events, and owns the socket.
//!
//! Bounds: a line is capped a little above the largest native message (an
//! over-long one gets an error and the connection is closed); at most
//! [`MAX_IN_FLIGHT`] requests of one connection run at once, and past that
//! the loop stops reading that connection's requests (only that client
//! waits) while it keeps writing replies and events. Events a client is too
//! slow to take are skipped: each only says "look again".

use std::future::Future;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::{Framed, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::api::{self, ErrorCode, Event, Reply, ReplyEnvelope, Request};
use crate::framing::MAX_INBOUND;

/// Longest request line accepted: a full native message plus headroom.
pub const MAX_LINE: usize = MAX_INBOUND + 1024;
/// Requests of one connection running at once.
pub const MAX_IN_FLIGHT: usize = 32;

pub async fn serve(listener: UnixListener, engine: Arc<Engine>) {
    loop {
        tokio::select! {
            _ = engine.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handler = engine.clone();
                    let handle = move |request| {
                        let engine = handler.clone();
                        async move { super::handlers::handle(&engine, request).await }
                    };
                    let events = engine.events.subscribe();
                    tokio::spawn(serve_connection(stream, handle, events, engine.shutdown.clone()));
                }
                Err(e) => tracing::warn!("control socket accept failed: {e}"),
            },
        }
    }
}

/// Serves one client until it leaves or the engine stops: `handle` answers
/// each request (in a task of its own), `events` are pushed without an id.
/// A `stop` request cancels `shutdown` once its reply is written.
pub async fn serve_connection<S, H, F>(
    stream: S,
    handle: H,
    mut events: broadcast::Receiver<Event>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request) -> F,
    F: Future<Output = Reply> + Send + 'static,
{
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(MAX_LINE));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A running request holds a permit until its reply is queued, so the
    // queue never holds more than MAX_IN_FLIGHT and a send never waits long.
    let (replies_tx, mut replies) = mpsc::channel::<ReplyEnvelope>(MAX_IN_FLIGHT);
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        let out = tokio::select! {
            _ = shutdown.cancelled() => return,
            acquired = in_flight.clone().acquire_owned(), if permit.is_none() => {
                permit = acquired.ok();
                continue;
            }
            Some(reply) = replies.recv() => reply,
            event = events.recv() => match event {
                Ok(event) => ReplyEnvelope::new(None, event.into()),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            line = lines.next(), if permit.is_some() => match line {
                None => return,
                Some(Ok(line)) => match api::decode_request(line.as_bytes()) {
                    Ok(envelope) => {
                        let (reply_to, held) = (replies_tx.clone(), permit.take());
                        let answer = handle(envelope.request);
                        tokio::spawn(async move {
                            let reply = ReplyEnvelope::new(envelope.id, answer.await);
                            let _ = reply_to.send(reply).await;
                            drop(held);
                        });
                        continue;
                    }
                    Err(error_reply) => error_reply,
                },
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                    let reply = ReplyEnvelope::error(None, ErrorCode::MessageTooLarge, "the request is too large");
                    let _ = lines.send(String::from_utf8_lossy(&reply.encode()).into_owned()).await;
                    return;
                }
                Some(Err(LinesCodecError::Io(e))) => {
                    tracing::debug!("control connection ended: {e}");
                    return;
                }
            },
        };
        let stopping = matches!(out.reply, Reply::Stopping);
        if lines.send(String::from_utf8_lossy(&out.encode()).into_owned()).await.is_err() {
            return;
        }
        if stopping {
            shutdown.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::Notify;

    use super::*;

    /// A handler whose `mail_send` waits until `release` is notified, as one
    /// talking to a stalled SMTP server does; everything else answers at once.
    fn stalling_mail(
        release: Arc<Notify>,
    ) -> impl Fn(Request) -> std::pin::Pin<Box<dyn Future<Output = Reply> + Send>> {
        move |request| {
            let release = release.clone();
            Box::pin(async move {
                match request {
                    Request::MailSend { .. } => {
                        release.notified().await;
                        Reply::MailSent { message_id: "<m@x>".into(), recipients: 1 }
                    }
                    _ => Reply::Pong,
                }
            })
        }
    }

    async fn next_line(reader: &mut (impl AsyncBufReadExt + Unpin)) -> serde_json::Value {
        let mut line = String::new();
        // Paused time: this fires at once if nothing else can happen, never
        // because the machine is slow.
        tokio::time::timeout(Duration::from_secs(60), reader.read_line(&mut line))
            .await
            .expect("an answer while the mail is still being sent")
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// A client connected to a server whose mail sending stalls until
    /// `release` is notified: its reader and writer, the events to push,
    /// the release and the engine's shutdown.
    struct Connected {
        read: BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
        write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
        events: broadcast::Sender<Event>,
        release: Arc<Notify>,
        shutdown: CancellationToken,
    }

    fn connect() -> Connected {
        let (client, server) = tokio::io::duplex(1024 * 1024);
        let (events, receiver) = broadcast::channel(8);
        let release = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        tokio::spawn(serve_connection(server, stalling_mail(release.clone()), receiver, shutdown.clone()));
        let (read, write) = tokio::io::split(client);
        Connected { read: BufReader::new(read), write, events, release, shutdown }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_mail_send_holds_up_neither_status_nor_events() {
        let Connected { mut read, mut write, events: events_tx, release, shutdown } = connect();

        let mail =
            Request::MailSend { to: vec!["a@b.c".into()], subject: "s".into(), body: "".into(), attachments: vec![] };
        write
            .write_all(format!("{}\n{}\n", mail.encode_line(1), Request::Ping.encode_line(2)).as_bytes())
            .await
            .unwrap();
        let pong = next_line(&mut read).await;
        assert_eq!((pong["id"].as_u64(), pong["type"].as_str()), (Some(2), Some("pong")));

        events_tx.send(Event::FilesChanged).unwrap();
        let event = next_line(&mut read).await;
        assert_eq!((event.get("id"), event["type"].as_str()), (None, Some("files_changed")));

        release.notify_one();
        let sent = next_line(&mut read).await;
        assert_eq!((sent["id"].as_u64(), sent["type"].as_str()), (Some(1), Some("mail_sent")));
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_in_flight_bound_the_client_waits_and_every_request_is_answered() {
        let Connected { mut read, mut write, events: _events, release, shutdown } = connect();

        let mail = Request::MailSend { to: vec![], subject: "s".into(), body: "".into(), attachments: vec![] };
        let stalled = MAX_IN_FLIGHT as u64 + 3;
        let mut text = String::new();
        for id in 0..stalled {
            text += &(mail.encode_line(id) + "\n");
        }
        text += &(Request::Ping.encode_line(1000) + "\n");
        write.write_all(text.as_bytes()).await.unwrap();
        // The ping waits behind the bound; each released mail lets one more in.
        let mut answered = Vec::new();
        while answered.len() < stalled as usize + 1 {
            release.notify_one();
            answered.push(next_line(&mut read).await["id"].as_u64().unwrap());
        }
        answered.sort_unstable();
        let mut expected: Vec<u64> = (0..stalled).collect();
        expected.push(1000);
        assert_eq!(answered, expected);
        shutdown.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_request_stops_the_engine_after_its_reply() {
        let (client, server) = tokio::io::duplex(4096);
        let (_events_tx, events) = broadcast::channel(8);
        let shutdown = CancellationToken::new();
        let handle = |_| async { Reply::Stopping };
        let served = tokio::spawn(serve_connection(server, handle, events, shutdown.clone()));
        let (read, mut write) = tokio::io::split(client);
        let mut read = BufReader::new(read);
        write.write_all(format!("{}\n", Request::Stop.encode_line(9)).as_bytes()).await.unwrap();
        assert_eq!(next_line(&mut read).await["type"], "stopping");
        served.await.unwrap();
        assert!(shutdown.is_cancelled());
    }
}
