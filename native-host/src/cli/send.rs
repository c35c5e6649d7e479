//! `mailmesh send …`: direct file send to people on the LAN, each
//! subcommand one request to the running engine.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::api::{Reply, Request, TransferView};
use crate::control::Control;
use crate::home::NodeHome;

#[derive(Debug, Subcommand)]
pub enum SendCommand {
    /// Offer a person a file from this computer or from the drive.
    File {
        /// Their address (they must be verified).
        to: String,
        /// A file on this computer.
        #[arg(required_unless_present = "drive_file", conflicts_with = "drive_file")]
        path: Option<PathBuf>,
        /// A drive file id (or the start of one) instead.
        #[arg(long, value_name = "ID")]
        drive_file: Option<String>,
    },
    /// Transfers coming and going, with progress.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Take an offered file.
    Accept {
        transfer: String,
        /// Into the drive, or into a folder (Downloads unless --save-to).
        #[arg(long, value_parser = ["drive", "downloads"], default_value = "downloads")]
        to: String,
        #[arg(long, value_name = "DIR")]
        save_to: Option<PathBuf>,
    },
    /// Refuse an offered file (nothing of it is kept).
    Decline { transfer: String },
    /// Stop a transfer, either way.
    Cancel { transfer: String },
}

pub async fn run(home: &NodeHome, command: SendCommand) -> anyhow::Result<ExitCode> {
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p).display().to_string();
    let request = match &command {
        SendCommand::File { to, path, drive_file } => {
            Request::SendFile { to: to.clone(), path: path.clone().map(absolute), file_id: drive_file.clone() }
        }
        SendCommand::List { .. } => Request::SendList,
        SendCommand::Accept { transfer, to, save_to } => {
            Request::SendAccept { transfer: transfer.clone(), to: to.to_string(), dir: save_to.clone().map(absolute) }
        }
        SendCommand::Decline { transfer } => Request::SendDecline { transfer: transfer.clone() },
        SendCommand::Cancel { transfer } => Request::SendCancel { transfer: transfer.clone() },
    };
    match (command, Control::connect(home).await?.request(request).await?) {
        (_, Reply::Transfer { transfer }) => {
            println!("offered {} to {} ({})", transfer.name, transfer.peer, transfer.id)
        }
        (SendCommand::List { json: true }, Reply::Transfers { transfers }) => {
            println!("{}", serde_json::to_string_pretty(&transfers)?)
        }
        (_, Reply::Transfers { transfers }) => transfers.iter().for_each(|t| println!("{}", line(t))),
        (_, other) => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn line(t: &TransferView) -> String {
    let arrow = if t.direction == "out" { "to" } else { "from" };
    let percent = (t.done * 100).checked_div(t.size).unwrap_or(100);
    let speed = if t.rate_bps > 0 {
        format!(", {:.1} MB/s, {} s left", t.rate_bps as f64 / 1e6, t.eta_secs.unwrap_or(0))
    } else {
        String::new()
    };
    format!("{}  {} {arrow} {}  {} {percent}%{speed} {}", &t.id[..8], t.name, t.peer, t.state, t.detail)
}
