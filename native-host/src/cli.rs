//! The command line: parse, pick the node home, run one command.
//!
//! When Chrome starts the binary as a native-messaging host it passes the
//! extension's origin (`chrome-extension://…/`) as an argument; that is
//! recognised before normal parsing and turns the process into the bridge.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::api::Reply;
use crate::control::Control;
use crate::home::NodeHome;
use crate::install::Browser;

#[derive(Debug, Parser)]
#[command(
    name = "mailmesh",
    version,
    about = "mailmesh: a private mesh of your own devices, identified by your email address"
)]
pub struct Cli {
    /// The node home directory (keys, config, logs, the engine socket).
    #[arg(long, global = true, env = "MAILMESH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the engine of this node (in the foreground unless --detach).
    Run {
        /// Start the engine in the background and return once it answers.
        #[arg(long)]
        detach: bool,
    },
    /// Stop the running engine.
    Stop,
    /// Show this node's identity and the engine's state.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register the native host with browsers so the extension can reach it.
    Install {
        #[arg(long, value_enum, default_value = "all")]
        browser: Browser,
        /// Register for one browser profile directory instead.
        #[arg(long, value_name = "DIR")]
        user_data_dir: Option<PathBuf>,
    },
    /// Remove what `install` wrote.
    Uninstall {
        #[arg(long, value_enum, default_value = "all")]
        browser: Browser,
        #[arg(long, value_name = "DIR")]
        user_data_dir: Option<PathBuf>,
    },
    /// Check the installation and say what to fix.
    Doctor {
        #[arg(long, value_name = "DIR")]
        user_data_dir: Option<PathBuf>,
    },
}

/// Arguments when started by the browser: `[--home DIR] <origin> [...]`.
#[derive(Debug, Parser)]
struct NativeArgs {
    #[arg(long, env = "MAILMESH_HOME")]
    home: Option<PathBuf>,
    origin: String,
    /// Chrome on Windows adds `--parent-window=N`; accepted and ignored.
    #[arg(long, hide = true)]
    parent_window: Option<String>,
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args
        .iter()
        .skip(1)
        .any(|a| a.starts_with("chrome-extension://"))
    {
        return native_main(args);
    }
    let cli = Cli::parse();
    match run_command(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mailmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

fn native_main(args: Vec<String>) -> ExitCode {
    // Nothing may be printed to stdout here: it carries frames to the browser.
    let Ok(native) = NativeArgs::try_parse_from(&args) else {
        return ExitCode::FAILURE;
    };
    let result = NodeHome::resolve(native.home.as_deref())
        .map_err(anyhow::Error::from)
        .and_then(|home| {
            let rt = runtime()?;
            let result = rt.block_on(crate::native_host::run(home, native.origin));
            // stdin is read on a blocking thread; do not wait for it forever.
            rt.shutdown_timeout(Duration::from_secs(1));
            result
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("native host failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = NodeHome::resolve(cli.home.as_deref())?;
    let rt = runtime()?;
    rt.block_on(async move {
        match cli.command {
            Command::Run { detach: false } => {
                crate::engine::run(home).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Run { detach: true } => {
                crate::spawn::ensure_engine(&home).await?;
                let status = status_of(&home).await?;
                println!(
                    "mailmesh engine running for {} (pid {})",
                    status.home, status.engine_pid
                );
                Ok(ExitCode::SUCCESS)
            }
            Command::Stop => stop(&home).await,
            Command::Status { json } => {
                let status = status_of(&home).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&status)?);
                } else {
                    println!("node        {}", status.fingerprint);
                    println!("device      {}", status.device_name);
                    println!("home        {}", status.home);
                    println!(
                        "engine      running, pid {}, version {}",
                        status.engine_pid, status.version
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Install {
                browser,
                user_data_dir,
            } => {
                let written = crate::install::install(&home, browser, user_data_dir.as_deref())?;
                for file in written {
                    println!("wrote {}", file.display());
                }
                println!("extension id: {}", crate::EXTENSION_ID);
                Ok(ExitCode::SUCCESS)
            }
            Command::Uninstall {
                browser,
                user_data_dir,
            } => {
                for file in crate::install::uninstall(&home, browser, user_data_dir.as_deref())? {
                    println!("removed {}", file.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Doctor { user_data_dir } => doctor(&home, user_data_dir.as_deref()).await,
        }
    })
}

async fn status_of(home: &NodeHome) -> anyhow::Result<crate::api::Status> {
    let mut control = Control::connect(home).await?;
    match control
        .request(serde_json::json!({"type": "status"}))
        .await?
    {
        Reply::Status(status) => Ok(*status),
        other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    }
}

async fn stop(home: &NodeHome) -> anyhow::Result<ExitCode> {
    let mut control = Control::connect(home).await?;
    let pid = status_of(home).await?.engine_pid;
    control.request(serde_json::json!({"type": "stop"})).await?;
    // Wait until the socket is gone, so a following `run` cannot race it.
    for _ in 0..100 {
        if Control::connect(home).await.is_err() {
            println!("stopped the engine (pid {pid})");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the engine (pid {pid}) did not stop within 5 seconds")
}

async fn doctor(home: &NodeHome, user_data_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let findings = crate::doctor::diagnose(home, user_data_dir).await;
    let mut out = std::io::stdout().lock();
    let mut healthy = true;
    for f in &findings {
        writeln!(out, "{} {}", if f.ok { "ok  " } else { "FAIL" }, f.what)?;
        if let Some(fix) = &f.fix {
            writeln!(out, "     fix: {fix}")?;
        }
        healthy &= f.ok;
    }
    writeln!(
        out,
        "{}",
        if healthy {
            "everything looks right"
        } else {
            "some checks failed; see the fixes above"
        }
    )?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
