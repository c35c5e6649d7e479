//! The host-to-host link over TCP on the LAN: the IO around
//! [`mailmesh_core::peer::session::Session`].
//!
//! On the wire each record is `[length u16 big-endian][record]`. One task
//! per link feeds the session the records a reader task reads, writes what
//! the session wants written as the socket takes it ([`Outgoing`]: the
//! loop never waits on a write, so its timers run even when the socket
//! takes nothing), and turns the session's events into updates of the peer
//! table and messages for the extension. Whoever dials speaks first.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mailmesh_core::identity::NodeId;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::peer::session::{Event, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::gate::{Gate, Permit};
use super::outgoing::Outgoing;
use super::Mesh;
use crate::clock::now_ms;

/// A live link's handle: where to send frames, and who opened it.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    pub id: u64,
    pub commands: mpsc::Sender<LinkCommand>,
    pub dialed_by: NodeId,
}

/// What a link task can be asked to do.
#[derive(Debug)]
pub enum LinkCommand {
    Send(Frame),
    Close(String),
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long an accepted connection may take to send its first record.
const FIRST_RECORD_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest record read before the handshake ends: a handshake message
/// (keys, a name, an address, a signature) is well under this.
const MAX_HANDSHAKE_RECORD: usize = 4096;
/// How long a closing link may take to flush its goodbye.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

/// Accepts links from other nodes until the engine stops, as far as the
/// [`Gate`] admits them.
pub async fn serve(listener: TcpListener, mesh: Arc<Mesh>) {
    let gate = Gate::default();
    loop {
        tokio::select! {
            _ = mesh.shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => match gate.admit(addr.ip()) {
                    Some(permit) => {
                        tokio::spawn(accept(stream, addr, permit, mesh.clone()));
                    }
                    // Closed at once: the address holds its share already.
                    None => tracing::debug!(%addr, "refused a connection: too many from that address"),
                },
                Err(e) => {
                    tracing::warn!("link accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
}

async fn accept(mut stream: TcpStream, addr: SocketAddr, permit: Permit, mesh: Arc<Mesh>) {
    let _ = stream.set_nodelay(true);
    let first = tokio::select! {
        first = tokio::time::timeout(FIRST_RECORD_TIMEOUT, read_record(&mut stream, MAX_HANDSHAKE_RECORD)) => first,
        _ = permit.pushed_out.cancelled() => return tracing::debug!(%addr, "pushed out by newer connections"),
    };
    let first = match first {
        Ok(Ok(first)) => first,
        Ok(Err(e)) => return tracing::debug!(%addr, "link closed before its first record: {e}"),
        Err(_) => return tracing::debug!(%addr, "link sent nothing in time"),
    };
    let config = mesh.handshake_config(Vec::new());
    let Ok(seed) = mesh.seed() else { return tracing::error!("no randomness for a handshake") };
    match Session::accept(&mesh.secrets, config, &first, seed, now_ms()) {
        Ok(session) => {
            run(stream, session, None, Some(&permit), mesh).await;
        }
        Err(e) => tracing::info!(%addr, "refused a link: {e}"),
    }
}

/// Dials a peer seen on the LAN. `member` picks the handshake: a member
/// link uses the network key; any other is a stranger link.
pub async fn dial(addr: SocketAddr, expected: NodeId, member: bool, mesh: Arc<Mesh>) {
    let outcome = async {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    }
    .await;
    let stream = match outcome {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%addr, peer = %expected, "cannot reach peer: {e}");
            mesh.dial_finished(&expected, addr, false);
            return;
        }
    };
    let mut config = mesh.handshake_config(Vec::new());
    if !member {
        config.network_psk = None;
    }
    let session = mesh
        .seed()
        .map_err(|e| e.to_string())
        .and_then(|seed| Session::connect(&mesh.secrets, config, seed, now_ms()).map_err(|e| e.to_string()));
    let proven = match session {
        Ok(session) => run(stream, session, Some(expected), None, mesh.clone()).await,
        Err(e) => {
            tracing::warn!("cannot start a handshake: {e}");
            false
        }
    };
    mesh.dial_finished(&expected, addr, proven);
}

/// Reads one `[length u16][record]`, refusing a record longer than `max`
/// before allocating it.
async fn read_record(stream: &mut (impl AsyncReadExt + Unpin), max: usize) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    if len > max {
        return Err(std::io::Error::other(format!("a record of {len} bytes where at most {max} fit")));
    }
    let mut record = vec![0u8; len];
    stream.read_exact(&mut record).await?;
    Ok(record)
}

/// Runs a link until it closes; true if its handshake proved the peer. An
/// accepted link brings its gate permit: pushed out before its handshake
/// ends, it closes.
async fn run(
    stream: TcpStream,
    mut session: Session,
    expected: Option<NodeId>,
    permit: Option<&Permit>,
    mesh: Arc<Mesh>,
) -> bool {
    let link_id = NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = stream.into_split();
    let (commands_tx, mut commands) = mpsc::channel::<LinkCommand>(256);
    let (records_tx, mut records) = mpsc::channel::<std::io::Result<Vec<u8>>>(16);
    // Until the handshake proves the peer, a record can only be a handshake
    // message: nothing larger is read.
    let max_record = Arc::new(AtomicUsize::new(MAX_HANDSHAKE_RECORD));
    // Reading sits in its own task so a half-read record is never lost to a
    // `select!` branch being cancelled.
    let read_max = max_record.clone();
    let read_task = tokio::spawn(async move {
        loop {
            let record = read_record(&mut reader, read_max.load(Ordering::Relaxed)).await;
            let failed = record.is_err();
            if records_tx.send(record).await.is_err() || failed {
                return;
            }
        }
    });
    let mut peer: Option<NodeId> = None;
    // A frame waiting for room in a service's queue: until it is in, this
    // link reads nothing more from the peer (its sending goes on).
    let mut waiting: Option<super::inbound::Waiting> = None;
    let mut out = Outgoing::default();
    loop {
        if let Err(e) = out.fill(&mut session, now_ms()) {
            session.close(e.to_string());
        }
        while let Some(event) = waiting.is_none().then(|| session.poll_event()).flatten() {
            match event {
                Event::Established(identity) => {
                    if let Some(expected) = expected.filter(|e| *e != identity.node_id) {
                        session.close(format!("expected node {expected}, met {}", identity.node_id));
                        continue;
                    }
                    if !mesh.link_fits(&identity.node_id, identity.member) {
                        // The dialer picks the right kind next time.
                        session.close("the link's kind does not fit the roster".into());
                        continue;
                    }
                    if identity.member {
                        // A member that joined lately may not be in our roster
                        // yet, or we in theirs: trade rosters first.
                        let _ = session.send(&mesh.roster_frame());
                    }
                    // The dialer's id decides which of two crossing links survives.
                    let dialed_by = if expected.is_some() { mesh.secrets.node_id() } else { identity.node_id };
                    let handle = LinkHandle { id: link_id, commands: commands_tx.clone(), dialed_by };
                    tracing::info!(peer = %identity.node_id, member = identity.member, name = %identity.name, "link up");
                    max_record.store(usize::from(u16::MAX), Ordering::Relaxed);
                    if let Some(permit) = permit {
                        permit.established();
                    }
                    peer = Some(identity.node_id);
                    mesh.link_opened(&identity, handle);
                }
                Event::Frame(frame) => {
                    if let Some(peer) = peer {
                        waiting = mesh.on_frame(&peer, frame);
                    }
                }
                Event::Rtt(rtt) => {
                    if let Some(peer) = peer {
                        mesh.on_link_rtt(&peer, rtt);
                    }
                }
                Event::Closed(reason) => {
                    tracing::info!(peer = ?peer, "link closed: {reason}");
                }
            }
        }
        if session.is_closed() {
            break;
        }
        let wake = [session.poll_timeout(), out.stall_deadline_ms()].into_iter().flatten().min();
        let wake = wake.map_or(Duration::from_secs(1), |at| Duration::from_millis(at.saturating_sub(now_ms())));
        let pushed_out = async {
            match permit {
                Some(permit) if peer.is_none() => permit.pushed_out.cancelled().await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = mesh.shutdown.cancelled() => session.close("the engine is stopping".into()),
            _ = pushed_out => session.close("pushed out by newer connections before the handshake ended".into()),
            () = async { if let Some(frame) = waiting.as_mut() { frame.await } }, if waiting.is_some() => waiting = None,
            record = records.recv(), if waiting.is_none() => match record {
                Some(Ok(record)) => {
                    if let Err(e) = session.handle_record(now_ms(), &record) {
                        tracing::info!(peer = ?peer, "dropping a link: {e}");
                    }
                }
                _ => session.close("the connection closed".into()),
            },
            written = writer.write(out.pending()), if out.is_pending() => match written {
                Ok(n) if n > 0 => out.advance(n, now_ms()),
                _ => session.close("the connection broke".into()),
            },
            // Frames are taken while the socket keeps up: the senders'
            // backpressure.
            command = commands.recv(), if out.has_room() => match command {
                Some(LinkCommand::Send(frame)) => {
                    if let Err(e) = session.send(&frame) {
                        tracing::debug!("cannot send on a link: {e}");
                    }
                }
                Some(LinkCommand::Close(reason)) => session.close(reason),
                None => {}
            },
            _ = tokio::time::sleep(wake) => {
                let now = now_ms();
                session.handle_timeout(now);
                if out.is_stalled(now) {
                    let secs = super::outgoing::STALL_MS / 1000;
                    session.close(format!("the peer has taken nothing sent to it for {secs} s"));
                }
            }
        }
    }
    // Flush the goodbye, if any, then let go; a peer that takes nothing
    // gets no more time.
    let flush = async {
        out.fill(&mut session, now_ms()).ok()?;
        writer.write_all(out.pending()).await.ok()
    };
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, flush).await;
    read_task.abort();
    if let Some(peer) = peer {
        mesh.link_closed(&peer, link_id);
    }
    peer.is_some()
}

#[cfg(test)]
mod tests {
    use mailmesh_core::identity::NodeSecrets;
    use mailmesh_core::peer::handshake::{HandshakeConfig, MAX_EMAIL, MAX_NAME};
    use mailmesh_core::peer::session::Session;

    use super::MAX_HANDSHAKE_RECORD;

    #[test]
    fn every_handshake_message_fits_what_is_read_before_the_handshake() {
        let config = |psk| HandshakeConfig {
            network_psk: psk,
            binding: Vec::new(),
            name: "n".repeat(MAX_NAME),
            email: format!("{}@x", "e".repeat(MAX_EMAIL - 2)),
        };
        for psk in [None, Some([9; 32])] {
            let (a, b) = (NodeSecrets::from_seeds([1; 32], [1; 32]), NodeSecrets::from_seeds([2; 32], [2; 32]));
            let mut dialer = Session::connect(&a, config(psk), [3; 32], 0).unwrap();
            let first = dialer.poll_transmit().unwrap();
            let mut listener = Session::accept(&b, config(psk), &first, [4; 32], 0).unwrap();
            let second = listener.poll_transmit().unwrap();
            dialer.handle_record(1, &second).unwrap();
            let third = dialer.poll_transmit().unwrap();
            for message in [first, second, third] {
                assert!(message.len() <= MAX_HANDSHAKE_RECORD, "{} bytes", message.len());
            }
        }
    }
}
