//! An impostor on the LAN, for the mesh tests: a node without the owner's
//! network key that tries everything a stranger on the same network could.
//!
//! It advertises the mailmesh service under a real node's id and network
//! key id (pointing at its own port, which answers with garbage), then
//! attacks one real engine's link port: a member handshake with a made-up
//! key, a stranger handshake followed by well-formed and malformed
//! signaling and data, and raw garbage. It prints what it got as JSON.
//!
//! With `flood`, it is another person's node instead that links as a
//! stranger and sends `send.msg`, `chat.msg` and `call.signal` frames in
//! turn as fast as the link takes them, reading and dropping whatever comes
//! back, until its standard input closes. It prints "flooding" once linked,
//! "sent N" every thousand frames, and at the end how many frames it sent
//! and whether the link stayed up.
//!
//! With `hold N`, it opens N connections to the link port that never say
//! a word, opening a new one whenever the target closes one, until its
//! standard input closes. It prints "holding" once it has tried all N, and
//! at the end how many connections the target accepted in all.
//!
//! usage: impostor TARGET_IP:PORT CLAIMED_NODE_ID NETWORK_KEY_ID SECONDS
//!        impostor flood TARGET_IP:PORT
//!        impostor hold TARGET_IP:PORT N

use std::net::SocketAddr;
use std::time::Duration;

use mailmesh_core::identity::NodeSecrets;
use mailmesh_core::peer::frame::Frame;
use mailmesh_core::peer::handshake::HandshakeConfig;
use mailmesh_core::peer::session::{Event, Session};
use mdns_sd::{ServiceDaemon, ServiceInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("randomness");
    bytes
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

async fn write_records(stream: &mut (impl AsyncWriteExt + Unpin), session: &mut Session) -> std::io::Result<()> {
    while let Some(record) = session.poll_transmit() {
        stream.write_all(&(record.len() as u16).to_be_bytes()).await?;
        stream.write_all(&record).await?;
    }
    Ok(())
}

async fn read_record(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await? as usize;
    let mut record = vec![0u8; len];
    stream.read_exact(&mut record).await?;
    Ok(record)
}

/// Runs one handshake; returns the session if the target let it through.
async fn handshake(target: SocketAddr, secrets: &NodeSecrets, psk: Option<[u8; 32]>) -> Option<(TcpStream, Session)> {
    let mut stream = TcpStream::connect(target).await.ok()?;
    let config = HandshakeConfig {
        network_psk: psk,
        binding: Vec::new(),
        name: "impostor".into(),
        email: "owner@mailmesh.test".into(),
    };
    let mut session = Session::connect(secrets, config, random(), now_ms()).ok()?;
    for _ in 0..4 {
        write_records(&mut stream, &mut session).await.ok()?;
        if session.peer().is_some() {
            return Some((stream, session));
        }
        let record = tokio::time::timeout(Duration::from_secs(3), read_record(&mut stream)).await.ok()?.ok()?;
        session.handle_record(now_ms(), &record).ok()?;
    }
    session.peer().is_some().then_some((stream, session))
}

/// Floods `target` over a stranger link until stdin closes (see the
/// module doc).
async fn flood(target: SocketAddr) {
    let secrets = NodeSecrets::from_seeds(random(), random());
    let Some((stream, mut session)) = handshake(target, &secrets, None).await else {
        println!("{{\"sent\":0,\"link_kept\":false}}");
        return;
    };
    println!("flooding");
    let (mut reader, mut writer) = stream.into_split();
    // Whatever the target says is read and handed back here, so its writes
    // never stall on us and its pings are answered.
    let (records_tx, mut records) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        loop {
            let Ok(len) = reader.read_u16().await else { return };
            let mut record = vec![0u8; len as usize];
            if reader.read_exact(&mut record).await.is_err() || records_tx.send(record).await.is_err() {
                return;
            }
        }
    });
    let stop = tokio::spawn(async { tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink()).await });
    let topics = ["send.msg", "chat.msg", "call.signal"];
    let (mut sent, mut link_kept) = (0usize, true);
    while !stop.is_finished() && link_kept {
        while let Ok(record) = records.try_recv() {
            link_kept &= session.handle_record(now_ms(), &record).is_ok();
            while session.poll_event().is_some() {}
        }
        let payload = random::<200>().to_vec();
        link_kept &= session.send(&Frame::Data { topic: topics[sent % topics.len()].into(), payload }).is_ok();
        sent += 1;
        if sent % 1000 == 0 {
            println!("sent {sent}");
        }
        session.handle_timeout(now_ms());
        link_kept &= write_records(&mut writer, &mut session).await.is_ok() && !session.is_closed();
    }
    println!("{{\"sent\":{sent},\"link_kept\":{link_kept}}}");
}

/// Holds `count` silent connections to `target` until stdin closes (see
/// the module doc).
async fn hold(target: SocketAddr, count: usize) {
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut holders = Vec::new();
    for _ in 0..count {
        let (accepted, stop) = (accepted.clone(), stop.clone());
        holders.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await
                else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Silent until the target hangs up; then again.
                let mut byte = [0u8; 1];
                tokio::select! {
                    _ = stream.read(&mut byte) => {}
                    _ = stop.cancelled() => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
        tokio::task::yield_now().await;
    }
    println!("holding");
    let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut tokio::io::sink()).await;
    stop.cancel();
    for holder in holders {
        let _ = holder.await;
    }
    println!("{{\"accepted\":{}}}", accepted.load(std::sync::atomic::Ordering::Relaxed));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, target] = &args[..] {
        if mode == "flood" {
            return flood(target.parse().expect("a socket address")).await;
        }
    }
    if let [_, mode, target, count] = &args[..] {
        if mode == "hold" {
            return hold(target.parse().expect("a socket address"), count.parse().expect("a count")).await;
        }
    }
    let [_, target, claimed_id, key_id, seconds] = &args[..] else {
        eprintln!("usage: impostor TARGET_IP:PORT CLAIMED_NODE_ID NETWORK_KEY_ID SECONDS");
        std::process::exit(2);
    };
    let target: SocketAddr = target.parse().expect("a socket address");
    let seconds: u64 = seconds.parse().expect("seconds");
    let secrets = NodeSecrets::from_seeds(random(), random());

    // A listener that answers every connection with garbage.
    let listener = TcpListener::bind(("0.0.0.0", 0)).await.expect("listen");
    let port = listener.local_addr().expect("port").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(&[0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xff]).await;
                let _ = stream.write_all(&random::<512>()).await;
            });
        }
    });

    // Advertise under the real node's id and network key id.
    let daemon = ServiceDaemon::new().expect("mDNS");
    let properties = [("id", claimed_id.as_str()), ("v", "1"), ("net", key_id.as_str())];
    let info = ServiceInfo::new("_mailmesh._tcp.local.", "impostor", "impostor.local.", "", port, &properties[..])
        .expect("service info")
        .enable_addr_auto();
    daemon.register(info).expect("advertise");

    // 1. A member handshake with a made-up network key.
    let member_link = handshake(target, &secrets, Some(random())).await.is_some();

    // 2. A stranger handshake, then signaling and data it has no right to send.
    let mut stranger_link = false;
    let mut frames_received = 0;
    if let Some((mut stream, mut session)) = handshake(target, &secrets, None).await {
        stranger_link = true;
        let offer = br#"{"kind":"offer","session":"x","sdp":"v=0\r\n"}"#.to_vec();
        for frame in [
            Frame::Signal(offer),
            Frame::Signal(b"{not json".to_vec()),
            Frame::Data { topic: "mesh.echo".into(), payload: vec![0, 0, 0, 0, 1, 42] },
        ] {
            let _ = session.send(&frame);
        }
        let _ = write_records(&mut stream, &mut session).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Ok(record)) = tokio::time::timeout_at(deadline, read_record(&mut stream)).await {
            if session.handle_record(now_ms(), &record).is_err() {
                break;
            }
            while let Some(event) = session.poll_event() {
                if let Event::Frame(_) = event {
                    frames_received += 1;
                }
            }
            let _ = write_records(&mut stream, &mut session).await;
        }
    }

    // 3. Raw garbage: a bad first message, then an oversized record.
    let mut garbage_accepted = 0;
    for junk in [random::<64>().to_vec(), [&[0xff, 0xff][..], &random::<300>()].concat()] {
        if let Ok(mut stream) = TcpStream::connect(target).await {
            let _ = stream.write_all(&junk).await;
            let mut buf = [0u8; 16];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
                garbage_accepted += usize::from(n > 0);
            }
        }
    }

    tokio::time::sleep(Duration::from_secs(seconds)).await;
    println!(
        "{{\"impostor_id\":\"{}\",\"member_link\":{member_link},\"stranger_link\":{stranger_link},\"frames_received\":{frames_received},\"garbage_answered\":{garbage_accepted}}}",
        secrets.node_id()
    );
    let _ = daemon.shutdown();
}
