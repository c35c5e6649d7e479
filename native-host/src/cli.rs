//! The command line: parse, pick the node home, run one command.
//!
//! When Chrome starts the binary as a native-messaging host it passes the
//! extension's origin (`chrome-extension://…/`) as an argument; that is
//! recognised before normal parsing and turns the process into the bridge.

mod chat;
mod import;
mod send;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::api::Reply;
use crate::api::{Account, AccountInput, Request, Secret, Security, Server};
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
    /// Set up the mail account and mail the owner a confirmation for this node.
    Init(InitArgs),
    /// Manage the devices of your network.
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// The mail account: give the new password after changing it.
    #[command(subcommand)]
    Account(AccountCommand),
    /// The drive: files stored encrypted across your devices.
    #[command(subcommand)]
    Files(FilesCommand),
    /// Mail: import attachments now, or send a mail.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Other people on your LAN: list, verify by email, rename, block.
    #[command(subcommand)]
    People(PeopleCommand),
    /// Send files directly to people on your LAN.
    #[command(subcommand)]
    Send(send::SendCommand),
    /// Chat with other people on your LAN.
    #[command(subcommand)]
    Chat(chat::ChatCommand),
    /// Confirm this node with the code from the confirmation mail.
    Confirm {
        /// The code, as in the mail (for example `abcd-efgh`).
        code: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// List the people whose devices were seen, and what is verified.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Mail them a challenge their devices answer over the LAN.
    Verify {
        email: String,
    },
    /// Give a person a name of your choice.
    Rename {
        email: String,
        name: String,
    },
    /// Ignore a person's devices (no challenge, no verification).
    Block {
        email: String,
    },
    Unblock {
        email: String,
    },
    /// Forget a person and what was verified.
    Rm {
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// List the files in the drive (newest first), or those that match.
    List {
        /// Text in the name, the sender or the subject of the mail.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Text in the sender's address.
        #[arg(long, value_name = "ADDRESS")]
        from: Option<String>,
        /// image, pdf, document, spreadsheet, presentation, text, audio,
        /// video, archive, mail or other.
        #[arg(long = "type", value_name = "KIND")]
        kind: Option<String>,
        /// Files dated this day or later (YYYY-MM-DD, UTC; the mail's date,
        /// else when the file was added).
        #[arg(long, value_name = "DAY")]
        since: Option<String>,
        /// Files dated before this day.
        #[arg(long, value_name = "DAY")]
        until: Option<String>,
        #[arg(long, value_parser = ["date", "name", "size"], default_value = "date")]
        sort: String,
        /// Oldest, Z to A or smallest first.
        #[arg(long)]
        reverse: bool,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long)]
        json: bool,
    },
    /// Add a file to the drive.
    Add { path: PathBuf },
    /// Restore a file from the drive.
    Get {
        id: String,
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
    },
    /// Delete a file from the drive.
    Rm { id: String },
    /// Rename a file.
    Mv { id: String, name: String },
    /// Check every stored fragment and re-create what is lost or damaged,
    /// now (the engine also does it periodically).
    Repair,
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Import the attachments of mail that arrived since the last import.
    Sync,
    /// How the import of the mailbox stands: messages and bytes done, time
    /// left, whether another device imports or why it waits.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// How the import behaves; change it with the options.
    Settings {
        /// The daily download budget in MB for all your devices together
        /// (0: none). By default the provider's limit, where it has one.
        #[arg(long, value_name = "MB")]
        budget_mb: Option<u64>,
        /// The folders to import from, comma-separated (INBOX by default).
        #[arg(long, value_delimiter = ',', value_name = "FOLDER,…")]
        folders: Option<Vec<String>>,
        /// Pass over mail that arrived before this day (YYYY-MM-DD; "" for
        /// all mail). It applies to mail not read yet.
        #[arg(long, value_name = "DAY")]
        since: Option<String>,
        /// Leave larger attachments in the mailbox (100 by default).
        #[arg(long, value_name = "MB")]
        max_attachment_mb: Option<u64>,
        /// Do not import inline images smaller than this (signature logos,
        /// icons; 16 by default, 0 imports every one).
        #[arg(long, value_name = "KB")]
        inline_images_under_kb: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Send a mail from your account, with files from your drive attached.
    Send {
        /// A recipient; repeat for more.
        #[arg(long, required = true)]
        to: Vec<String>,
        #[arg(long, default_value = "")]
        subject: String,
        /// A file with the text of the mail (`-` for standard input).
        #[arg(long)]
        body_file: Option<PathBuf>,
        /// A drive file id (or its start) to attach; repeat for more.
        #[arg(long = "attach")]
        attachments: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Store the mail password you changed at your provider (it is tried
    /// first; the old one stays if the new one is refused).
    Password {
        /// File holding the password, or `-` to read it from standard input.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// List the devices of your network, and those waiting to join.
    List,
    /// Let a device that asked to join in: this device mails the code to type on it.
    Approve {
        /// The waiting device's node id or fingerprint, as `mailmesh nodes list` shows it.
        node_id: String,
    },
    /// Turn away a device that asked to join.
    Decline { node_id: String },
    /// Remove a device (asks you to confirm by mail; rotates the network key).
    Remove {
        /// The device's node id or fingerprint, as `mailmesh nodes list` shows it.
        node_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The owner's email address: the identity of the network.
    #[arg(long)]
    email: String,
    /// Create a new network even if the mailbox holds one (say, a network
    /// you do not recognise among those `init` lists).
    #[arg(long)]
    new_network: bool,
    /// The IMAP server (default: what mailmesh finds for the address: its
    /// list of providers, the domain's autoconfig, SRV and MX records).
    #[arg(long)]
    imap_host: Option<String>,
    /// Default: 993 (or what was found).
    #[arg(long)]
    imap_port: Option<u16>,
    /// Default: tls (or what was found).
    #[arg(long, value_enum)]
    imap_security: Option<Security>,
    /// The SMTP server (default: what mailmesh finds for the address).
    #[arg(long)]
    smtp_host: Option<String>,
    /// Default: 465 (or what was found).
    #[arg(long)]
    smtp_port: Option<u16>,
    /// Default: tls (or what was found).
    #[arg(long, value_enum)]
    smtp_security: Option<Security>,
    /// Login name (default: what the provider's autoconfig names, else the
    /// email address).
    #[arg(long)]
    user: Option<String>,
    /// File holding the password, or `-` to read it from standard input.
    /// (Never on the command line, where other users could see it.) Not
    /// needed with --oauth.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Sign in with OAuth 2 in a browser instead of a password (the
    /// default for providers that take no password, like Outlook.com).
    #[arg(long)]
    oauth: bool,
    /// With OAuth 2: print the sign-in address instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// What to call this device in the roster and in mails.
    #[arg(long)]
    device_name: Option<String>,
    /// Extra trusted CA certificates (PEM), for a self-hosted server.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Accept server certificates nobody vouches for (encrypted but not
    /// authenticated). Prefer --tls-ca.
    #[arg(long)]
    accept_invalid_certs: bool,
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
    if args.iter().skip(1).any(|a| a.starts_with("chrome-extension://")) {
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
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()
}

fn native_main(args: Vec<String>) -> ExitCode {
    // Nothing may be printed to stdout here: it carries frames to the browser.
    let Ok(native) = NativeArgs::try_parse_from(&args) else {
        return ExitCode::FAILURE;
    };
    let result = NodeHome::resolve(native.home.as_deref()).map_err(anyhow::Error::from).and_then(|home| {
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
            Command::Run { detach: false } => crate::engine::run(home).await.map(|()| ExitCode::SUCCESS),
            Command::Run { detach: true } => {
                crate::spawn::ensure_engine(&home).await?;
                let status = status_of(&home).await?;
                println!("mailmesh engine running for {} (pid {})", status.home, status.engine_pid);
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
                    println!("engine      running, pid {}, version {}", status.engine_pid, status.version);
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Install { browser, user_data_dir } => {
                let written = crate::install::install(&home, browser, user_data_dir.as_deref())?;
                for file in written {
                    println!("wrote {}", file.display());
                }
                println!("extension id: {}", crate::EXTENSION_ID);
                Ok(ExitCode::SUCCESS)
            }
            Command::Uninstall { browser, user_data_dir } => {
                for file in crate::install::uninstall(&home, browser, user_data_dir.as_deref())? {
                    println!("removed {}", file.display());
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Doctor { user_data_dir } => doctor(&home, user_data_dir.as_deref()).await,
            Command::Init(args) => init(&home, args).await,
            Command::Nodes(NodesCommand::List) => {
                let status = status_of(&home).await?;
                for m in status.roster {
                    let me = if m.node_id == status.node_id { " (this device)" } else { "" };
                    println!("{}  {}{me}", m.fingerprint, m.device_name);
                }
                for r in status.join_requests {
                    println!(
                        "{}  {}  asks to join: `mailmesh nodes approve {}` or `decline`",
                        r.fingerprint, r.device_name, r.node_id
                    );
                }
                if status.change_password {
                    println!("{CHANGE_PASSWORD}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Nodes(NodesCommand::Approve { node_id }) => {
                Control::connect(&home).await?.request(Request::JoinApprove { node_id }).await?;
                println!("approved: a mail brings the code to type on the new device");
                Ok(ExitCode::SUCCESS)
            }
            Command::Nodes(NodesCommand::Decline { node_id }) => {
                Control::connect(&home).await?.request(Request::JoinDecline { node_id }).await?;
                println!("declined");
                Ok(ExitCode::SUCCESS)
            }
            Command::Account(AccountCommand::Password { password_file }) => {
                let password = Secret::new(read_password(&password_file)?);
                Control::connect(&home).await?.request(Request::AccountPassword { password }).await?;
                println!("the new password works and is stored on this device");
                Ok(ExitCode::SUCCESS)
            }
            Command::Files(command) => files(&home, command).await,
            Command::People(command) => people(&home, command).await,
            Command::Chat(command) => chat::run(&home, command).await,
            Command::Send(command) => send::run(&home, command).await,
            Command::Mail(MailCommand::Send { to, subject, body_file, attachments }) => {
                let body = match body_file {
                    None => String::new(),
                    Some(path) if path.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())?,
                    Some(path) => std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?,
                };
                let request = Request::MailSend { to, subject, body, attachments };
                match Control::connect(&home).await?.request(request).await? {
                    Reply::MailSent { message_id, recipients } => {
                        println!("sent to {recipients} recipient(s), Message-ID {message_id}")
                    }
                    other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Mail(MailCommand::Status { json }) => import::status(&home, json).await,
            Command::Mail(MailCommand::Settings {
                budget_mb,
                folders,
                since,
                max_attachment_mb,
                inline_images_under_kb,
                json,
            }) => {
                let change = crate::api::ImportSettingsChange {
                    budget_mb,
                    folders,
                    since,
                    max_attachment_mb,
                    inline_images_under_kb,
                };
                import::settings(&home, change, json).await
            }
            Command::Mail(MailCommand::Sync) => {
                match Control::connect(&home).await?.request(Request::MailSync).await? {
                    Reply::MailSynced { messages, imported } => {
                        println!("read {messages} new messages, imported {imported} files")
                    }
                    other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Nodes(NodesCommand::Remove { node_id }) => {
                let mut control = Control::connect(&home).await?;
                control.request(Request::NodeRemove { node_id }).await?;
                println!("{REMOVAL_ASKED}");
                Ok(ExitCode::SUCCESS)
            }
            Command::Confirm { code } => {
                let mut control = Control::connect(&home).await?;
                control.request(Request::ConfirmCode { code }).await?;
                let status = status_of(&home).await?;
                match status.network_id {
                    Some(network) if status.enrollment == "enrolled" => println!("confirmed; network {network}"),
                    _ => println!("{JOIN_APPROVED}"),
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

/// One line a file: id, size, health, kind, date, name, and where it came from.
fn print_files(files: &[crate::api::FileView]) {
    for f in files {
        let health = format!("{}/{}", f.health.fragments_present, f.health.fragments_total);
        let date = f.origin.as_ref().map_or("", |o| o.date.get(..10).unwrap_or_default());
        let from = f.origin.as_ref().map(|o| format!("  (from {}: {})", o.from, o.subject)).unwrap_or_default();
        println!(
            "{}  {:>12}  {:<10} {health:>7}  {:<12} {date:<10}  {}{from}",
            &f.id[..16],
            f.size,
            f.health.state,
            f.kind,
            f.name
        );
    }
}

async fn files(home: &NodeHome, command: FilesCommand) -> anyhow::Result<ExitCode> {
    let absolute = |path: &std::path::Path| std::path::absolute(path).map(|p| p.display().to_string());
    let day = |day: &Option<String>| -> anyhow::Result<Option<u64>> {
        day.as_deref()
            .map(|d| {
                let date = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| anyhow::anyhow!("{d} is not a day written YYYY-MM-DD"))?;
                Ok(date.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp_millis().max(0) as u64))
            })
            .transpose()
    };
    let request = match &command {
        FilesCommand::List { search, from, kind, since, until, sort, reverse, limit, offset, .. } => {
            Request::FilesSearch {
                query: crate::api::FileQuery {
                    text: search.clone(),
                    from: from.clone(),
                    kind: kind.clone(),
                    since_ms: day(since)?,
                    until_ms: day(until)?,
                    sort: Some(sort.clone()),
                    reverse: *reverse,
                    offset: *offset,
                    limit: *limit,
                },
            }
        }
        FilesCommand::Add { path } => Request::FilesAdd { path: absolute(path)? },
        FilesCommand::Get { id, output } => Request::FilesGet { file_id: id.clone(), path: absolute(output)? },
        FilesCommand::Rm { id } => Request::FilesRemove { file_id: id.clone() },
        FilesCommand::Repair => Request::FilesRepair,
        FilesCommand::Mv { id, name } => Request::FilesRename { file_id: id.clone(), name: name.clone() },
    };
    let reply = Control::connect(home).await?.request(request).await?;
    match (command, reply) {
        (FilesCommand::List { json: true, .. }, Reply::FilesPage { files, .. }) => {
            println!("{}", serde_json::to_string_pretty(&files)?)
        }
        (FilesCommand::List { json: false, .. }, Reply::FilesPage { files, total, offset }) => {
            print_files(&files);
            if files.len() < total {
                eprintln!("{} to {} of {total} files", offset + 1, offset + files.len());
            }
        }
        (FilesCommand::Repair, Reply::Files { files }) => print_files(&files),
        (FilesCommand::Add { .. }, Reply::File { file: f }) => println!("added {}  {}", f.id, f.name),
        (FilesCommand::Get { output, .. }, Reply::File { file: f }) => {
            println!("wrote {} ({} bytes) to {}", f.name, f.size, output.display())
        }
        (FilesCommand::Rm { .. }, Reply::File { file: f }) => println!("deleted {}", f.name),
        (FilesCommand::Mv { .. }, Reply::File { file: f }) => println!("renamed to {}", f.name),
        (_, other) => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

const REMOVAL_ASKED: &str =
    "A mail asks you to confirm the removal: open its link on this device, or run `mailmesh confirm CODE` here.";
const CHANGE_PASSWORD: &str = "A device was removed, and it knew your mail password: change the password at your mail \
     provider, then run `mailmesh account password --password-file FILE` on each of your devices.";
const JOIN_APPROVED: &str = "approved; the device that sent the code will welcome this one shortly";

async fn people(home: &NodeHome, command: PeopleCommand) -> anyhow::Result<ExitCode> {
    let request = match &command {
        PeopleCommand::List { .. } => Request::PeopleList,
        PeopleCommand::Verify { email } => Request::PeopleVerify { email: email.clone() },
        PeopleCommand::Rename { email, name } => Request::PeopleRename { email: email.clone(), name: name.clone() },
        PeopleCommand::Block { email } => Request::PeopleBlock { email: email.clone(), blocked: true },
        PeopleCommand::Unblock { email } => Request::PeopleBlock { email: email.clone(), blocked: false },
        PeopleCommand::Rm { email } => Request::PeopleRemove { email: email.clone() },
    };
    let Reply::People { people } = Control::connect(home).await?.request(request).await? else {
        anyhow::bail!("unexpected reply from the engine");
    };
    match command {
        PeopleCommand::List { json: true } => println!("{}", serde_json::to_string_pretty(&people)?),
        PeopleCommand::Verify { email } => println!("a challenge went to {email}; their devices answer by themselves"),
        _ => {
            for p in people {
                let name = if p.name.is_empty() { String::new() } else { format!(" ({})", p.name) };
                let blocked = if p.blocked { ", blocked" } else { "" };
                println!("{}{name}  {}{blocked}, {} device(s)", p.email, p.state, p.devices.len());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status_of(home: &NodeHome) -> anyhow::Result<crate::api::Status> {
    let mut control = Control::connect(home).await?;
    match control.request(Request::Status).await? {
        Reply::Status(status) => Ok(*status),
        other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    }
}

/// A password from a file, or from standard input for `-`.
fn read_password(file: &std::path::Path) -> anyhow::Result<String> {
    let password = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s)?;
        s
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read the password file {}: {e}", file.display()))?
    };
    Ok(password.trim_end_matches(['\r', '\n']).to_string())
}

/// A server from the flags, or else the provider's; what is given wins.
fn server(
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    known: Option<Server>,
    default_port: u16,
) -> Option<Server> {
    let base = match (host, known) {
        (Some(host), _) => Server { host, port: default_port, security: Security::Tls },
        (None, Some(known)) => known,
        (None, None) => return None,
    };
    Some(Server { port: port.unwrap_or(base.port), security: security.unwrap_or(base.security), ..base })
}

async fn init(home: &NodeHome, args: InitArgs) -> anyhow::Result<ExitCode> {
    let tls_ca = args.tls_ca.clone().map(|p| std::path::absolute(&p).unwrap_or(p));
    let found = if args.imap_host.is_some() && args.smtp_host.is_some() && !args.oauth {
        None
    } else {
        let net = crate::mail::discover::Net::new(tls_ca.as_deref())?;
        crate::mail::discover::discover(&args.email, &net).await
    };
    let known = |pick: fn(&crate::mail::discover::Found) -> Server| found.as_ref().map(pick);
    let imap = server(args.imap_host.clone(), args.imap_port, args.imap_security, known(|f| f.imap.clone()), 993);
    let smtp = server(args.smtp_host.clone(), args.smtp_port, args.smtp_security, known(|f| f.smtp.clone()), 465);
    let (Some(imap), Some(smtp)) = (imap, smtp) else {
        anyhow::bail!(
            "mailmesh could not find the mail servers of {}: give --imap-host and --smtp-host (your provider's help pages name them)",
            args.email.rsplit_once('@').map_or(args.email.as_str(), |(_, d)| d)
        );
    };
    if let Some(found) = &found {
        println!(
            "{}servers from {}: IMAP {}:{} ({:?}), SMTP {}:{} ({:?})",
            found.provider.as_ref().map(|p| format!("{p}'s ")).unwrap_or_default(),
            found.source,
            imap.host,
            imap.port,
            imap.security,
            smtp.host,
            smtp.port,
            smtp.security
        );
    }
    let oauth_only = found.as_ref().is_some_and(|f| f.oauth_only);
    let use_oauth = args.oauth || (oauth_only && args.password_file.is_none());
    if let Some(advice) = found.as_ref().and_then(|f| f.advice.as_ref()).filter(|_| !use_oauth) {
        println!("{advice}.");
    }
    let oauth = found.as_ref().and_then(|f| f.oauth.clone());
    let user = args.user.clone().or_else(|| found.and_then(|f| f.user));
    let account = Account {
        user: user.unwrap_or_else(|| args.email.clone()),
        email: args.email.clone(),
        imap,
        smtp,
        tls_ca,
        accept_invalid_certs: args.accept_invalid_certs,
        oauth: None,
    };
    account.validate()?;
    crate::spawn::ensure_engine(home).await?;
    let mut control = Control::connect(home).await?;
    let email = account.email.clone();
    let view = if use_oauth {
        let Some(oauth) = oauth else {
            anyhow::bail!("mailmesh knows no OAuth 2 sign-in for {email}: give --password-file instead");
        };
        sign_in_with_browser(home, &mut control, Account { oauth: Some(oauth), ..account }, &args).await?
    } else {
        let Some(password_file) = &args.password_file else {
            anyhow::bail!("give --password-file (or --oauth to sign in in a browser, where the provider offers it)");
        };
        let account = AccountInput { account, password: Secret::new(read_password(password_file)?) };
        let request =
            Request::AccountSave { account, device_name: args.device_name.clone(), new_network: args.new_network };
        match control.request(request).await? {
            Reply::Enrollment(view) => *view,
            other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
        }
    };
    for network in &view.networks_found {
        println!("Found the network {} in your mailbox, with:", network.network_id);
        for m in &network.members {
            println!("  {}  {}", m.fingerprint, m.device_name);
        }
    }
    if view.state == "awaiting_approval" {
        println!(
            "This device asked to join it. Approve it on one of your devices (`mailmesh nodes approve`); that device mails {} a code: run `mailmesh confirm CODE` with it here.\n\
             Not your devices? Run `mailmesh init` again with `--new-network` to create your own network.",
            email
        );
    } else {
        println!(
            "A confirmation mail was sent to {}. Open its link on this device, or run `mailmesh confirm CODE` with the code from it.",
            email
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// How long `init --oauth` waits for the sign-in in the browser.
const SIGN_IN_WAIT: Duration = Duration::from_secs(15 * 60);

/// Starts an OAuth 2 sign-in, opens it in the system browser (or prints
/// it), and waits until the engine has set the account up with it.
async fn sign_in_with_browser(
    home: &NodeHome,
    control: &mut Control,
    account: Account,
    args: &InitArgs,
) -> anyhow::Result<crate::api::EnrollmentView> {
    let email = account.email.clone();
    let request =
        Request::SignInStart { account, device_name: args.device_name.clone(), new_network: args.new_network };
    let url = match control.request(request).await? {
        Reply::SignInUrl { url } => url,
        other => anyhow::bail!("unexpected reply from the engine: {other:?}"),
    };
    println!("Sign in to your mail account in your browser:\n  {url}");
    let opened = !args.no_browser
        && std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !opened {
        println!("(Open that address in a browser on this computer.)");
    }
    let started = std::time::Instant::now();
    while started.elapsed() < SIGN_IN_WAIT {
        let status = status_of(home).await?;
        if !status.signing_in {
            if let Some(why) = status.sign_in_failed {
                anyhow::bail!("{why}");
            }
            if status.account_email.as_deref() == Some(email.as_str()) {
                return Ok(crate::api::EnrollmentView {
                    state: status.enrollment,
                    email: status.account_email,
                    network_id: status.network_id,
                    networks_found: status.networks_found,
                });
            }
            anyhow::bail!(
                "the sign-in was given up (another one started, or it took too long); run `mailmesh init` again"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("no sign-in came back within {} minutes; run `mailmesh init` again", SIGN_IN_WAIT.as_secs() / 60)
}

async fn stop(home: &NodeHome) -> anyhow::Result<ExitCode> {
    let mut control = Control::connect(home).await?;
    let pid = status_of(home).await?.engine_pid;
    control.request(Request::Stop).await?;
    // Wait until the process is gone (its lock released), not only its
    // socket, so a following `run` cannot find the home still taken.
    for _ in 0..600 {
        if Control::connect(home).await.is_err() && !crate::engine::lock::is_held(&home.lock_file()) {
            println!("stopped the engine (pid {pid})");
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the engine (pid {pid}) did not stop within 30 seconds")
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
    writeln!(out, "{}", if healthy { "everything looks right" } else { "some checks failed; see the fixes above" })?;
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_come_from_the_flags_else_the_provider() {
        let gmail = crate::mail::providers::by_email("me@gmail.com").map(|p| p.imap());
        let from_table = server(None, None, None, gmail.clone(), 993).unwrap();
        assert_eq!((from_table.host.as_str(), from_table.port), ("imap.gmail.com", 993));
        let port_given = server(None, Some(1993), None, gmail, 993).unwrap();
        assert_eq!((port_given.host.as_str(), port_given.port), ("imap.gmail.com", 1993));
        let own = server(Some("mail.example.org".into()), None, Some(Security::Starttls), None, 993).unwrap();
        assert_eq!((own.host.as_str(), own.port, own.security), ("mail.example.org", 993, Security::Starttls));
        assert!(server(None, None, None, None, 993).is_none(), "an unknown provider needs its servers");
    }
}
