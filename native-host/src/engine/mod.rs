//! The engine: the long-running process of one node.
//!
//! Start-up order matters: take the [`lock::EngineLock`] first (so two
//! engines can never touch one home), then load or create the identity and
//! config, then bind the control socket (mode 0600, inside the 0700 home)
//! and serve requests until `stop`, SIGTERM or SIGINT.

pub mod lock;
mod server;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use mailmesh_core::identity::NodeSecrets;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::api::{Status, PROTOCOL_VERSION};
use crate::config::{self, Config};
use crate::home::NodeHome;
use crate::identity;

/// What request handlers can see of the running engine.
pub struct Engine {
    pub home: NodeHome,
    pub secrets: NodeSecrets,
    pub config: Config,
    pub started_at: u64,
    pub shutdown: CancellationToken,
}

impl Engine {
    pub fn status(&self) -> Status {
        let public = self.secrets.public();
        let id = public.node_id();
        Status {
            node_id: id.to_string(),
            fingerprint: id.fingerprint(),
            public_key: hex::encode(public.ed25519),
            x25519_public_key: hex::encode(public.x25519),
            device_name: self.config.device_name.clone(),
            version: crate::VERSION.to_string(),
            core_version: mailmesh_core::VERSION.to_string(),
            protocol: PROTOCOL_VERSION,
            home: self.home.root().display().to_string(),
            engine_pid: std::process::id(),
            started_at: self.started_at,
        }
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs the engine in the foreground until it is told to stop.
pub async fn run(home: NodeHome) -> anyhow::Result<()> {
    home.ensure()?;
    crate::logging::init_file(&home.engine_log()).context("cannot open the engine log")?;
    let _lock = lock::EngineLock::acquire(&home.lock_file())?;
    let secrets = identity::load_or_create(&home)?;
    let config = config::load_or_create(&home, now_unix())?;

    // We hold the lock, so a socket file left behind is from a dead engine.
    let socket_path = home.socket();
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path)
        .with_context(|| format!("cannot listen on {}", socket_path.display()))?;
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o600))?;

    let state = Arc::new(Engine {
        home: home.clone(),
        secrets,
        config,
        started_at: now_unix(),
        shutdown: CancellationToken::new(),
    });
    tracing::info!(
        node_id = %state.secrets.node_id(),
        pid = std::process::id(),
        home = %home.root().display(),
        "engine started"
    );
    eprintln!(
        "mailmesh engine running for {} (pid {})",
        home.root().display(),
        std::process::id()
    );

    let signals = tokio::spawn(stop_on_signal(state.shutdown.clone()));
    server::serve(listener, state.clone()).await;
    signals.abort();
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("engine stopped");
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the engine with `mailmesh stop`");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
