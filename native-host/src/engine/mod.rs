//! The engine: the long-running process of one node, and the wiring of
//! its services.
//!
//! ```text
//! control socket ─▶ server (a task per request) ─▶ handlers (the router) ─▶ a service's method
//! LAN link ─▶ mesh ─▶ routes (bounded, per peer) ─▶ DriveNet · ChatNet · CallNet · DirectSend · people
//! mailbox watcher ─▶ Engine::on_mail ─▶ NodeService (joins, rosters, rekeys) · people (challenges)
//!                └─▶ MailImport ─▶ DriveNet
//! NodeService ─▶ Standing (watch) ─▶ every service, and the mesh's identity
//! every service ─▶ api::Event (broadcast) ─▶ each client connection
//! ```
//!
//! Each service owns its state (see ARCHITECTURE.md); `Engine` holds the
//! handles and the few facts that never change while it runs.
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
mod mail_watch;
pub mod node;
mod outbox;
pub mod people;
mod routes;
mod server;
mod sockets;
pub mod standing;
#[cfg(test)]
mod testkit;
mod transfers;

use crate::clock::{now_ms, now_unix};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::Context;
use mailmesh_core::identity::NodeSecrets;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::account;
use crate::api::{Event, Status, PROTOCOL_VERSION};
use crate::config;
use crate::drive::{Drive, DriveError};
use crate::enroll::Enrollment;
use crate::home::NodeHome;
use crate::identity;
use crate::mesh::{self, Mesh};
use calls::CallNet;
use chat_net::ChatNet;
use direct_send::DirectSend;
use drive_net::DriveNet;
use node::{NodeService, NodeState};
use standing::Standing;

/// What request handlers can see of the running engine.
pub struct Engine {
    pub home: NodeHome,
    pub secrets: NodeSecrets,
    pub started_at: u64,
    pub loopback_port: u16,
    pub shutdown: CancellationToken,
    /// Events pushed to every attached client.
    pub events: tokio::sync::broadcast::Sender<Event>,
    pub mesh: Arc<Mesh>,
    /// The owner's address and the network, as services read them.
    pub standing: tokio::sync::watch::Receiver<Standing>,
    /// The account, the config and the enrollment, and the mails that move them.
    pub node: NodeService,
    /// The drive on this node and across the owner's nodes.
    pub drive_net: Arc<DriveNet>,
    /// Chat with other people, replicated over the owner's nodes.
    pub chat: Arc<ChatNet>,
    /// Call rooms and the call pages' signaling.
    pub calls: CallNet,
    /// Direct file sends, coming and going.
    pub sends: Arc<DirectSend>,
    /// Other people: the contact book and answers waiting for a link.
    pub people: people::PeopleHandle,
    /// The owner's mail attachments into the drive.
    pub import: Arc<import::MailImport>,
    /// One-time tokens for the loopback WebSockets.
    pub socket_tokens: sockets::Tokens,
}

impl Engine {
    pub async fn status(&self) -> Status {
        let chat_unread = self.chat.unread();
        let public = self.secrets.public();
        let id = public.node_id();
        let state = self.node.read(StatusPart::of).await;
        // Shown only while this device waits to join.
        let joining = matches!(state.enrollment.as_str(), "awaiting_approval" | "approved");
        let networks_found = if joining { self.node.networks_found() } else { Vec::new() };
        let (signing_in, sign_in_failed) = self.node.sign_in_progress();
        let import = self.import.view(self.import_plan().await.budget);
        Status {
            node_id: id.to_string(),
            fingerprint: id.fingerprint(),
            public_key: hex::encode(public.ed25519),
            x25519_public_key: hex::encode(public.x25519),
            device_name: state.device_name,
            version: crate::VERSION.to_string(),
            core_version: mailmesh_core::VERSION.to_string(),
            protocol: PROTOCOL_VERSION,
            home: self.home.root().display().to_string(),
            engine_pid: std::process::id(),
            started_at: self.started_at,
            loopback_port: self.loopback_port,
            account_email: state.account_email,
            enrolled: state.network_id.is_some(),
            enrollment: state.enrollment,
            network_id: state.network_id,
            network_key_id: state.network_key_id,
            roster: state.roster,
            link_port: self.mesh.link_port,
            // Other people's nodes come marked verified from the mesh's
            // trusted set, which the contact book keeps current.
            peers: self.mesh.peers(),
            chat_unread,
            join_requests: self.node.join_requests().await,
            change_password: state.change_password,
            sign_in_again: self.node.sign_in_again(),
            signing_in,
            sign_in_failed,
            networks_found,
            import,
        }
    }

    /// Hands the mail password the owner last gave (after a removal) to
    /// the online members, or to `only`: each keeps the newest that works.
    pub async fn share_password(&self, only: Option<mailmesh_core::identity::NodeId>) {
        let Some(payload) = self.node.password_update().await else { return };
        let members = only.map_or_else(|| self.mesh.online_members(), |m| vec![m]);
        for member in members {
            let frame = mailmesh_core::peer::frame::Frame::Data {
                topic: routes::PASSWORD_TOPIC.into(),
                payload: payload.clone(),
            };
            let _ = self.mesh.send_to(&member, frame).await;
        }
    }

    /// The network key, if this node is in a network.
    pub fn network_key(&self) -> Option<mailmesh_core::drive::NetworkKey> {
        self.standing.borrow().network.as_ref().map(|m| m.key.clone())
    }

    pub fn drive(&self) -> &Drive {
        self.drive_net.drive()
    }

    /// Runs blocking drive work off the async threads.
    pub async fn drive_blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Drive) -> Result<T, DriveError> + Send + 'static,
    ) -> Result<T, DriveError> {
        self.drive_net.on_disk(op).await
    }
}

impl Engine {
    /// Imports the attachments of mail that arrived since the checkpoints
    /// now (`mailmesh mail sync`), over a connection of its own for as long
    /// as it takes.
    pub async fn import_mail(&self) -> Result<(usize, usize), String> {
        let account = self.node.read(|state| state.account.clone()).await;
        let Some((account, password)) = account.map(|(a, s)| self.node.login_for(a, s)) else { return Ok((0, 0)) };
        if !self.drive_net.in_network() {
            return Ok((0, 0));
        }
        let plan = self.import_plan().await;
        let mut session = crate::mail::imap::connect(&account, &password).await.map_err(|e| e.to_string())?;
        let mut reader = crate::mailbox::ImapReader { session: &mut session, host: account.imap.host.clone() };
        let outcome = self.import.pass(&mut reader, &plan, None).await.map_err(|e| e.to_string());
        let _ = session.logout().await;
        outcome.map(|pass| (pass.messages, pass.files))
    }

    /// What the import reads, within what budget, and what it keeps
    /// (`config.json`, else the defaults and the provider's limit).
    pub async fn import_plan(&self) -> import::Plan {
        self.import_plan_and_settings().await.0
    }

    pub async fn import_plan_and_settings(&self) -> (import::Plan, crate::api::ImportSettingsView) {
        self.node.read(|state| import::settings::plan(&state.config, state.account.as_ref().map(|(a, _)| a))).await
    }

    /// Changes how the import behaves; wakes it (a larger budget or
    /// another folder may give it work).
    pub async fn change_import_settings(
        &self,
        change: &crate::api::ImportSettingsChange,
    ) -> Result<crate::api::ImportSettingsView, String> {
        self.node.change_import_settings(change).await?;
        self.import.wake();
        self.notify(Event::StatusChanged);
        Ok(self.import_plan_and_settings().await.1)
    }

    /// A mailmesh mail from the watcher: a challenge is the contact book's,
    /// everything else the node's.
    pub async fn on_mail(&self, mail: crate::mailbox::Found) {
        if mail.kind == crate::mailbox::Kind::Challenge {
            if let Err(why) = self.on_challenge_mail(&mail.payload).await {
                tracing::info!(uid = mail.uid, "ignored a challenge: {why}");
            }
        } else {
            self.node.on_mail(mail).await;
        }
    }

    /// Tells every attached client; nobody listening is fine.
    pub fn notify(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

/// What `status` shows of the node's state, read in one go.
struct StatusPart {
    device_name: String,
    account_email: Option<String>,
    enrollment: String,
    network_id: Option<String>,
    network_key_id: Option<String>,
    roster: Vec<crate::api::RosterMember>,
    change_password: bool,
}

impl StatusPart {
    fn of(state: &NodeState) -> StatusPart {
        let network = state.enrollment.network();
        StatusPart {
            device_name: state.config.device_name.clone(),
            account_email: state.account.as_ref().map(|(a, _)| a.email.clone()),
            enrollment: state.enrollment.state().to_string(),
            network_id: network.map(|n| n.roster.network_id()),
            network_key_id: network.map(|n| n.key.key_id()),
            roster: state.enrollment.roster_view(),
            change_password: state.config.change_password,
        }
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
    let state = NodeState { config, account, enrollment };
    let standing = tokio::sync::watch::Sender::new(state.standing());
    let (mesh, mesh_events) = Mesh::new(secrets.clone(), link_port, shutdown.clone());
    let routes = routes::register(&mesh);
    let mesh = Arc::new(mesh);
    let events = tokio::sync::broadcast::channel(64).0;
    let started_at = now_unix();
    let drive_net = DriveNet::new(
        secrets.node_id(),
        drive,
        mesh.clone(),
        standing.subscribe(),
        events.clone(),
        drive_net::Settings::from_env(started_at * 1000),
    );
    let people = people::PeopleHandle::start(home.root().join(people::BOOK_FILE));
    let chat = ChatNet::new(
        crate::chat::History::load(
            home.root().join(chat_net::HISTORY_FILE),
            mailmesh_core::chat::history_key(&secrets),
        ),
        mesh.clone(),
        people.clone(),
        standing.subscribe(),
        events.clone(),
    );
    let sends = DirectSend::start(
        home.root(),
        mesh.clone(),
        people.clone(),
        drive_net.clone(),
        events.clone(),
        shutdown.clone(),
    );
    let import = import::MailImport::new(
        secrets.node_id(),
        drive_net.clone(),
        mesh.clone(),
        events.clone(),
        import::Settings::from_env(),
        Arc::new(now_ms),
    );
    let calls = CallNet::new(secrets.node_id(), mesh.clone(), people.clone(), standing.subscribe(), events.clone());
    let node = NodeService::new(
        home.clone(),
        secrets.clone(),
        loopback_port,
        state,
        standing.clone(),
        events.clone(),
        crate::mailbox::ServerAccount::connector(),
        drive_net.clone(),
    );
    let engine = Arc::new(Engine {
        drive_net,
        standing: standing.subscribe(),
        node,
        people,
        chat,
        sends,
        calls,
        home: home.clone(),
        secrets,
        started_at,
        loopback_port,
        shutdown,
        events,
        mesh: mesh.clone(),
        import,
        socket_tokens: sockets::Tokens::default(),
    });
    engine.mesh.set_identity(standing.borrow().mesh.clone());
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
    // A key rotation a kill interrupted is finished now (until then the
    // old key still opens every file), and again after each mailbox pass.
    let rotation = engine.clone();
    tokio::spawn(async move {
        if let Err(e) = rotation.node.finish_rotation().await {
            tracing::warn!("a change of the network key is not finished yet: {e}");
        }
    });
    let mail = tokio::spawn(watch_mailbox(engine.clone()));
    let signed_in = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.node.keep_signed_in().await })
    };
    let identity = tokio::spawn(keep_mesh_identity(engine.clone()));
    let link_server = tokio::spawn(mesh::link::serve(links, mesh.clone()));
    let discovery = tokio::spawn(mesh::discovery::run(mesh.clone()));
    let from_mesh = tokio::spawn(on_mesh_events(engine.clone(), mesh_events));
    let maintenance = tokio::spawn(engine.drive_net.clone().maintain(engine.shutdown.clone()));
    let chat = tokio::spawn(engine.chat.clone().deliver_loop(engine.shutdown.clone()));
    let services = tokio::spawn(routes::serve(engine.clone(), routes));
    let trusted = tokio::spawn(people::keep_trusted(engine.clone()));
    server::serve(listener, engine.clone()).await;
    for task in [
        signals,
        web,
        mail,
        signed_in,
        identity,
        link_server,
        discovery,
        from_mesh,
        maintenance,
        chat,
        services,
        trusted,
    ] {
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
/// with its standing, and tells clients when the peers change (they show
/// peers from `status`).
async fn keep_mesh_identity(engine: Arc<Engine>) {
    let mut standing = engine.standing.clone();
    let mut peers = engine.mesh.to_extension.subscribe();
    loop {
        tokio::select! {
            changed = standing.changed() => {
                if changed.is_err() {
                    return;
                }
                let identity = standing.borrow_and_update().mesh.clone();
                engine.mesh.set_identity(identity);
            }
            event = peers.recv() => match event {
                Ok(mesh::extension_api::ToExtension::Peers { .. }) => engine.notify(Event::PeersChanged),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
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
                if let Err(why) = engine.node.adopt_roster(&roster, "a member on the LAN").await {
                    tracing::debug!("kept our roster: {why}");
                }
            }
            mesh::MeshEvent::MemberUp(peer) => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    engine.chat.on_member_up(peer).await;
                    engine.share_pins(Some(peer)).await;
                    engine.share_password(Some(peer)).await;
                    engine.drive_net.on_member_up(peer).await;
                    engine.import.on_member_up(peer).await;
                });
            }
            mesh::MeshEvent::StrangerUp(peer) => {
                let engine = engine.clone();
                tokio::spawn(async move { engine.on_stranger_up(peer).await });
            }
        }
    }
}

/// What the INBOX watch does on its connection after each pass: finish a
/// change of the network key, then import attachments for a slice.
struct InboxWork {
    engine: Arc<Engine>,
}

impl mail_watch::SessionWork for InboxWork {
    fn run<'a>(
        &'a mut self,
        session: &'a mut crate::mail::imap::ImapSession,
        host: &'a str,
    ) -> futures_util::future::BoxFuture<'a, bool> {
        Box::pin(async move {
            let engine = &self.engine;
            if let Err(e) = engine.node.finish_rotation().await {
                tracing::warn!("a change of the network key is not finished yet: {e}");
            }
            let plan = engine.import_plan().await;
            let mut reader = crate::mailbox::ImapReader { session, host: host.to_string() };
            match engine.import.pass(&mut reader, &plan, Some(engine.import.slice())).await {
                Ok(pass) => pass.more,
                Err(e) => {
                    tracing::warn!("importing mail attachments failed: {e}");
                    false
                }
            }
        })
    }

    fn wanted(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(self.engine.import.woken())
    }

    fn refused(&mut self, error: &crate::mail::MailError) -> Option<std::time::Duration> {
        match error {
            crate::mail::MailError::Throttled(why) => Some(self.engine.import.server_limits(why)),
            _ => None,
        }
    }
}

/// Keeps a mailbox watcher running for the current account, restarting it
/// when the account changes.
async fn watch_mailbox(engine: Arc<Engine>) {
    loop {
        let Some((account, password)) = engine.node.login().await else {
            engine.node.account_changed().await;
            continue;
        };
        let stop = engine.shutdown.child_token();
        let watcher = {
            let engine = engine.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let on_mail = |mail| {
                    let engine = engine.clone();
                    async move { engine.on_mail(mail).await }
                };
                let mut inbox_work = InboxWork { engine: engine.clone() };
                let drive = engine.drive_net.drive().clone();
                use crate::mailbox::{FOLDER, INBOX};
                use mail_watch::watch;
                tokio::join!(
                    watch(
                        INBOX,
                        account.clone(),
                        password.clone(),
                        drive.clone(),
                        stop.clone(),
                        on_mail,
                        Some(&mut inbox_work)
                    ),
                    watch(FOLDER, account, password, drive, stop, on_mail, None),
                );
            })
        };
        tokio::select! {
            _ = engine.node.account_changed() => {}
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
