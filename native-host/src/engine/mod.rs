//! The engine: the long-running process of one node.
//!
//! Start-up order matters: take the [`lock::EngineLock`] first (so two
//! engines can never touch one home), then load or create the identity and
//! config, load the account and enrollment, bind the control socket (mode
//! 0600, inside the 0700 home), the loopback HTTP endpoint and the LAN link
//! port, and serve until `stop`, SIGTERM or SIGINT.

mod calls;
mod chat_net;
mod direct_send;
mod drive_net;
mod handlers;
mod import;
pub mod lock;
mod loopback;
mod mailroom;
mod outbox;
pub mod people;
mod routes;
mod server;
mod sockets;
mod transfers;

use crate::clock::{now_ms, now_unix};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use mailmesh_core::identity::NodeSecrets;
use tokio::net::UnixListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::account;
use crate::api::{Account, Secret};
use crate::api::{EnrollmentView, Event, Status, PROTOCOL_VERSION};
use crate::config::{self, Config};
use crate::drive::{Drive, DriveError};
use crate::enroll::{Enrollment, Proof};
use crate::home::NodeHome;
use crate::identity;
use crate::mesh::{self, Mesh, MeshIdentity};

/// What the engine knows that changes while it runs.
pub struct NodeState {
    pub config: Config,
    pub account: Option<(Account, Secret)>,
    pub enrollment: Enrollment,
}

/// What request handlers can see of the running engine.
pub struct Engine {
    pub home: NodeHome,
    pub secrets: NodeSecrets,
    pub started_at: u64,
    pub loopback_port: u16,
    pub shutdown: CancellationToken,
    pub state: Mutex<NodeState>,
    /// Events pushed to every attached client.
    pub events: tokio::sync::broadcast::Sender<Event>,
    /// Signalled when the mail account was saved or changed.
    pub account_changed: tokio::sync::Notify,
    pub mesh: Arc<Mesh>,
    pub drive: Arc<Drive>,
    pub drive_net: drive_net::DriveNet,
    /// The chat history and its replication state.
    pub chat: std::sync::Mutex<chat_net::ChatState>,
    /// Wakes the chat delivery loop.
    pub chat_wake: tokio::sync::Notify,
    /// Call rooms and the call pages' signaling.
    pub calls: std::sync::Mutex<calls::Calls>,
    /// Direct file sends, coming and going.
    pub sends: std::sync::Mutex<direct_send::Sends>,
    /// Other people: the contact book and answers waiting for a link.
    pub people: people::PeopleHandle,
    /// The engine itself, for work that outlives a borrow (blocking tasks).
    this: std::sync::Weak<Engine>,
    /// One import of mail at a time (the watcher's and `mail sync`).
    pub importing: Mutex<()>,
    /// One-time tokens for the loopback WebSockets.
    pub socket_tokens: sockets::Tokens,
}

impl Engine {
    pub async fn status(&self) -> Status {
        let chat_unread = self.chat_unread().await;
        let public = self.secrets.public();
        let id = public.node_id();
        let state = self.state.lock().await;
        Status {
            node_id: id.to_string(),
            fingerprint: id.fingerprint(),
            public_key: hex::encode(public.ed25519),
            x25519_public_key: hex::encode(public.x25519),
            device_name: state.config.device_name.clone(),
            version: crate::VERSION.to_string(),
            core_version: mailmesh_core::VERSION.to_string(),
            protocol: PROTOCOL_VERSION,
            home: self.home.root().display().to_string(),
            engine_pid: std::process::id(),
            started_at: self.started_at,
            loopback_port: self.loopback_port,
            account_email: state.account.as_ref().map(|(a, _)| a.email.clone()),
            enrolled: state.enrollment.network().is_some(),
            enrollment: state.enrollment.state().to_string(),
            network_id: state.enrollment.network().map(|n| n.roster.network_id()),
            network_key_id: state.enrollment.network().map(|n| n.key.key_id()),
            roster: state.enrollment.roster_view(),
            link_port: self.mesh.link_port,
            // Other people's nodes come marked verified from the mesh's
            // trusted set, which the contact book keeps current.
            peers: self.mesh.peers(),
            chat_unread,
        }
    }

    pub fn self_ref(&self) -> std::sync::Weak<Engine> {
        self.this.clone()
    }

    /// The network key, if this node is in a network.
    pub async fn network_key(&self) -> Option<mailmesh_core::drive::NetworkKey> {
        self.state.lock().await.enrollment.network().map(|n| n.key.clone())
    }

    /// Runs blocking drive work off the async threads.
    pub async fn drive_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Drive) -> Result<T, DriveError> + Send + 'static,
    ) -> Result<T, DriveError> {
        let drive = self.drive.clone();
        tokio::task::spawn_blocking(move || op(&drive))
            .await
            .unwrap_or_else(|e| Err(DriveError::Open(std::io::Error::other(e.to_string()))))
    }

    /// What the mesh should say about this node and whom it trusts.
    fn mesh_identity(state: &NodeState) -> MeshIdentity {
        let network = state.enrollment.network();
        MeshIdentity {
            name: state.config.device_name.clone(),
            email: state.account.as_ref().map(|(a, _)| a.email.clone()).unwrap_or_default(),
            psk: network.map(|n| n.key.link_psk()),
            key_id: network.map(|n| n.key.key_id()),
            roster: network
                .map(|n| n.roster.members().into_iter().map(|e| (e.node.node_id(), e.device_name.clone())).collect())
                .unwrap_or_default(),
            removed: network.map(|n| n.roster.removed()).unwrap_or_default(),
            roster_bytes: network.map(|n| n.roster.encode()).unwrap_or_default(),
        }
    }

    pub fn enrollment_view(&self, state: &NodeState) -> EnrollmentView {
        EnrollmentView {
            state: state.enrollment.state().to_string(),
            email: state.account.as_ref().map(|(a, _)| a.email.clone()),
            network_id: state.enrollment.network().map(|n| n.roster.network_id()),
        }
    }

    /// Confirms this node with a link token or a typed code.
    pub async fn confirm(&self, proof: Proof<'_>) -> Result<EnrollmentView, crate::enroll::EnrollError> {
        let mut guard = self.state.lock().await;
        let state = &mut *guard;
        state.enrollment.confirm(&self.home, &self.secrets, &state.config.device_name, proof, now_ms())?;
        self.notify(Event::StatusChanged);
        let view = self.enrollment_view(state);
        drop(guard);
        // Later devices find the network by this roster in the mailbox.
        self.announce_roster().await;
        Ok(view)
    }
}

impl Engine {
    /// Tells every attached client; nobody listening is fine.
    pub fn notify(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// Runs the engine in the foreground until it is told to stop.
pub async fn run(home: NodeHome) -> anyhow::Result<()> {
    home.ensure()?;
    crate::logging::init_file(&home.engine_log()).context("cannot open the engine log")?;
    let _lock = lock::EngineLock::acquire(&home.lock_file())?;
    let secrets = identity::load_or_create(&home)?;
    let mut config = config::load_or_create(&home, now_unix())?;
    let account = account::load(&home)?;
    let enrollment = Enrollment::load(&home, &secrets)?;
    let drive = Arc::new(Drive::open(&home).context("cannot open the drive")?);

    let (http, loopback_port) = loopback::bind(config.loopback_port).await?;
    let (links, link_port) = bind_link_port(config.link_port).await?;
    if config.loopback_port != Some(loopback_port) || config.link_port != Some(link_port) {
        config.loopback_port = Some(loopback_port);
        config.link_port = Some(link_port);
        config::save(&home, &config)?;
    }

    // We hold the lock, so a socket file left behind is from a dead engine.
    let socket_path = home.socket();
    let _ = std::fs::remove_file(&socket_path);
    let listener =
        UnixListener::bind(&socket_path).with_context(|| format!("cannot listen on {}", socket_path.display()))?;
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))?;

    let shutdown = CancellationToken::new();
    let (mesh, mesh_events) = Mesh::new(secrets.clone(), link_port, shutdown.clone());
    let routes = routes::register(&mesh);
    let mesh = Arc::new(mesh);
    let engine = Arc::new_cyclic(|this| Engine {
        this: this.clone(),
        drive_net: drive_net::DriveNet::default(),
        people: people::PeopleHandle::start(home.root().join(people::BOOK_FILE)),
        chat: std::sync::Mutex::new(chat_net::ChatState::new(crate::chat::History::load(
            home.root().join(chat_net::HISTORY_FILE),
            mailmesh_core::chat::history_key(&secrets),
        ))),
        chat_wake: tokio::sync::Notify::new(),
        sends: std::sync::Mutex::new(direct_send::Sends::load(home.root())),
        calls: std::sync::Mutex::new(calls::Calls::default()),
        home: home.clone(),
        secrets,
        started_at: now_unix(),
        loopback_port,
        shutdown,
        state: Mutex::new(NodeState { config, account, enrollment }),
        events: tokio::sync::broadcast::channel(64).0,
        account_changed: tokio::sync::Notify::new(),
        mesh: mesh.clone(),
        drive,
        importing: Mutex::new(()),
        socket_tokens: sockets::Tokens::default(),
    });
    engine.mesh.set_trusted_people(people::trusted_nodes(&engine.people.book()));
    tracing::info!(
        node_id = %engine.secrets.node_id(),
        pid = std::process::id(),
        home = %home.root().display(),
        loopback_port,
        link_port,
        "engine started"
    );
    eprintln!("mailmesh engine running for {} (pid {})", home.root().display(), std::process::id());

    let signals = tokio::spawn(stop_on_signal(engine.shutdown.clone()));
    let web = tokio::spawn(loopback::serve(http, engine.clone()));
    let mail = tokio::spawn(watch_mailbox(engine.clone()));
    let identity = tokio::spawn(keep_mesh_identity(engine.clone()));
    let link_server = tokio::spawn(mesh::link::serve(links, mesh.clone()));
    let discovery = tokio::spawn(mesh::discovery::run(mesh.clone()));
    let from_mesh = tokio::spawn(on_mesh_events(engine.clone(), mesh_events));
    let maintenance = tokio::spawn(drive_net::maintain(engine.clone()));
    let chat = tokio::spawn(chat_net::deliver_loop(engine.clone()));
    let services = tokio::spawn(routes::serve(engine.clone(), routes));
    let trusted = tokio::spawn(people::keep_trusted(engine.clone()));
    server::serve(listener, engine.clone()).await;
    for task in [signals, web, mail, identity, link_server, discovery, from_mesh, maintenance, chat, services, trusted]
    {
        task.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("engine stopped");
    Ok(())
}

/// Binds the LAN link port on every interface, preferring the port used before.
async fn bind_link_port(preferred: Option<u16>) -> anyhow::Result<(tokio::net::TcpListener, u16)> {
    if let Some(port) = preferred {
        if let Ok(listener) = tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
            return Ok((listener, port));
        }
    }
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", 0)).await.context("cannot open the LAN link port")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Keeps the mesh's idea of this node (name, network key, roster) in step
/// with the enrollment, and tells clients when the peers change.
async fn keep_mesh_identity(engine: Arc<Engine>) {
    let mut events = engine.events.subscribe();
    let mut peers = engine.mesh.to_extension.subscribe();
    loop {
        let identity = Engine::mesh_identity(&*engine.state.lock().await);
        engine.mesh.set_identity(identity);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Event::StatusChanged) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Ok(_) => {}
                    Err(_) => return,
                },
                event = peers.recv() => {
                    if let Ok(mesh::extension_api::ToExtension::Peers { .. }) = event {
                        // Clients show peers from `status`: have them re-read it.
                        let _ = engine.events.send(Event::PeersChanged);
                    }
                }
            }
        }
    }
}

/// Acts on what the mesh reports: rosters to adopt, members and other
/// people's nodes linked up. (Frames for services come through their
/// routes, see `routes.rs`.)
async fn on_mesh_events(engine: Arc<Engine>, mut events: tokio::sync::mpsc::Receiver<mesh::MeshEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            mesh::MeshEvent::Roster(roster) => {
                if let Err(why) = engine.adopt_roster(&roster, "a member on the LAN").await {
                    tracing::debug!("kept our roster: {why}");
                }
            }
            mesh::MeshEvent::MemberUp(peer) => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    engine.on_member_up_chat(peer).await;
                    engine.share_pins(Some(peer)).await;
                    engine.on_member_up(peer).await;
                });
            }
            mesh::MeshEvent::StrangerUp(peer) => {
                let engine = engine.clone();
                tokio::spawn(async move { engine.on_stranger_up(peer).await });
            }
        }
    }
}

/// Keeps a mailbox watcher running for the current account, restarting it
/// when the account changes.
async fn watch_mailbox(engine: Arc<Engine>) {
    loop {
        let account = engine.state.lock().await.account.clone();
        let Some((account, password)) = account else {
            engine.account_changed.notified().await;
            continue;
        };
        let stop = engine.shutdown.child_token();
        let watcher = {
            let engine = engine.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let importer = engine.clone();
                crate::mail::watch::watch(
                    account,
                    password,
                    stop,
                    |mail| {
                        let engine = engine.clone();
                        async move { engine.on_mail(mail).await }
                    },
                    move || {
                        let engine = importer.clone();
                        async move {
                            if let Err(e) = engine.import_mail().await {
                                tracing::warn!("importing mail attachments failed: {e}");
                            }
                        }
                    },
                )
                .await
            })
        };
        tokio::select! {
            _ = engine.account_changed.notified() => {}
            _ = engine.shutdown.cancelled() => {}
        }
        stop.cancel();
        let _ = watcher.await;
        if engine.shutdown.is_cancelled() {
            return;
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers; stop the engine with `mailmesh stop`");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
