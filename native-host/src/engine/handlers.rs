//! The handler map of the control socket: one arm per request type.

use crate::api::{AccountChecks, AccountInput, Check, EngineState, ErrorCode, Reply, Request, PROTOCOL_VERSION};
use crate::mail::{discover, MailError};

use super::node::SetupError;
use super::Engine;
use crate::clock::now_ms;

pub async fn handle(engine: &Engine, request: Request) -> Reply {
    match request {
        Request::Hello { client, version } => {
            tracing::info!(client = %client, version = %version, "client attached");
            Reply::Hello {
                host_version: crate::VERSION.to_string(),
                core_version: mailmesh_core::VERSION.to_string(),
                protocol: PROTOCOL_VERSION,
            }
        }
        Request::Status => Reply::Status(Box::new(engine.status().await)),
        Request::Ping => Reply::Pong,
        Request::StartEngine => Reply::EngineState { state: EngineState::Up, message: "the engine is running".into() },
        Request::Stop => {
            tracing::info!("stop requested over the control socket");
            Reply::Stopping
        }
        Request::AccountDiscover { email, tls_ca } => match discover::Net::new(tls_ca.as_deref()) {
            Ok(net) => {
                let mut found = discover::discover(&email, &net).await;
                // A sign-in is offered only where this build has a client id
                // for it, unless it is the provider's only way in (then the
                // attempt says how to register one).
                if let Some(f) = found.as_mut().filter(|f| !f.oauth_only) {
                    let usable = f.oauth.clone().is_some_and(|o| {
                        crate::mail::oauth::settings(&engine.home, &o.issuer.clone(), Some(o)).is_ok()
                    });
                    if !usable {
                        f.oauth = None;
                    }
                }
                Reply::ServersFound(Box::new(discover::view(found)))
            }
            Err(e) => error(ErrorCode::MailFailed, e),
        },
        Request::AccountTest { account } => {
            let (imap, smtp) = test_logins(&account).await;
            Reply::AccountTest(Box::new(AccountChecks { imap, smtp }))
        }
        Request::AccountSave { account, device_name, new_network } => {
            save_account(engine, account, device_name, new_network).await
        }
        Request::SignInStart { account, device_name, new_network } => {
            sign_in(engine, account, device_name, new_network).await
        }
        Request::SignInAgain => match engine.node.account().await {
            Some((account, _)) if account.oauth.is_some() => {
                match engine.node.start_sign_in(account, None, false).await {
                    Ok(url) => Reply::SignInUrl { url },
                    Err(e) => error(ErrorCode::InvalidAccount, e),
                }
            }
            _ => error(ErrorCode::InvalidAccount, "this device's account does not sign in with OAuth 2"),
        },
        Request::NetworkNew => setup_reply(engine.node.start_new_network().await),
        Request::NodeRemove { node_id } => match engine.node.request_removal(&node_id).await {
            Ok(()) => Reply::RemovalRequested { node_id },
            Err(e) => error(ErrorCode::ConfirmFailed, e),
        },
        Request::JoinApprove { node_id } => match engine.node.approve_join(&node_id).await {
            Ok(()) => Reply::Status(Box::new(engine.status().await)),
            Err(e) => error(ErrorCode::ConfirmFailed, e),
        },
        Request::JoinDecline { node_id } => match engine.node.decline_join(&node_id).await {
            Ok(()) => Reply::Status(Box::new(engine.status().await)),
            Err(e) => error(ErrorCode::ConfirmFailed, e),
        },
        Request::AccountPassword { password } => match engine.node.change_password(password).await {
            Ok(()) => {
                engine.share_password(None).await;
                Reply::Status(Box::new(engine.status().await))
            }
            Err(e) => error(ErrorCode::MailFailed, e),
        },
        Request::FilesAdd { path } => {
            let path = std::path::PathBuf::from(path);
            let name = crate::drive::name_of(&path);
            match engine.drive_net.add_file(path, name).await {
                Ok(file) => one(file),
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::FilesList => match engine.drive_net.list_files().await {
            Ok(files) => Reply::Files { files },
            Err(e) => error(ErrorCode::DriveFailed, e),
        },
        Request::FilesGet { file_id, path } => {
            match engine.drive_net.restore(file_id, std::path::PathBuf::from(path)).await {
                Ok(file) => one(file),
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::FilesRemove { file_id } => {
            let at = now_ms();
            match engine.drive_blocking(move |drive| drive.remove(&file_id, at)).await {
                Ok(file) => {
                    engine.drive_net.announce_deletion(&file.id, at).await;
                    one(file)
                }
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::FilesRename { file_id, name } => {
            match engine.drive_blocking(move |drive| drive.rename(&file_id, &name, now_ms())).await {
                Ok(file) => {
                    engine.drive_net.announce_record(&file.id).await;
                    one(file)
                }
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::FilesRepair => {
            engine.drive_net.scrub_and_repair().await;
            engine.drive_net.sweep().await;
            match engine.drive_net.list_files().await {
                Ok(files) => Reply::Files { files },
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::PeopleList => Reply::People { people: engine.people_list() },
        Request::PeopleVerify { email } => match engine.verify_person(&email).await {
            Ok(_) => Reply::People { people: engine.people_list() },
            Err(e) => error(ErrorCode::PeopleFailed, e),
        },
        Request::PeopleRename { email, name } => people_edit(engine, move |book| book.rename(&email, &name)).await,
        Request::PeopleBlock { email, blocked } => {
            people_edit(engine, move |book| book.set_blocked(&email, blocked)).await
        }
        Request::PeopleRemove { email } => people_edit(engine, move |book| book.remove(&email).map(|_| ())).await,
        Request::ChatList => match engine.chat.list() {
            Ok(conversations) => {
                let unread = conversations.iter().map(|c| c.unread).sum();
                Reply::Conversations { conversations, unread }
            }
            Err(e) => error(ErrorCode::ChatFailed, e),
        },
        Request::ChatShow { conversation, limit } => match engine.chat.show_page(&conversation, limit) {
            Ok(detail) => Reply::Conversation { conversation: Box::new(detail) },
            Err(e) => error(ErrorCode::ChatFailed, e),
        },
        Request::ChatSend { conversation, text } => match engine.chat.send(&conversation, &text).await {
            Ok(message) => Reply::ChatSent { message: Box::new(message) },
            Err(e) => error(ErrorCode::ChatFailed, e),
        },
        Request::ChatRead { conversation } => match engine.chat.read(&conversation).await {
            Ok(()) => Reply::ChatDone { conversation },
            Err(e) => error(ErrorCode::ChatFailed, e),
        },
        Request::ChatGroupCreate { title, members } => match engine.chat.group_create(&title, &members).await {
            Ok(conversation) => Reply::ChatDone { conversation },
            Err(e) => error(ErrorCode::ChatFailed, e),
        },
        Request::ChatGroupMembers { conversation, add, remove } => {
            match engine.chat.group_members(&conversation, &add, &remove).await {
                Ok(()) => Reply::ChatDone { conversation },
                Err(e) => error(ErrorCode::ChatFailed, e),
            }
        }
        Request::SendFile { to, path, file_id } => match engine.sends.offer(&to, path, file_id).await {
            Ok(transfer) => Reply::Transfer { transfer: Box::new(transfer) },
            Err(e) => error(ErrorCode::SendFailed, e),
        },
        Request::CallsList => Reply::Calls { calls: engine.calls.list() },
        Request::SendList => Reply::Transfers { transfers: engine.sends.list() },
        Request::SendAccept { transfer, to, dir } => {
            let destination = match (to.as_str(), dir) {
                ("drive", _) => crate::transfer_store::Destination::Drive,
                ("downloads", Some(dir)) => crate::transfer_store::Destination::Folder { path: dir.into() },
                ("downloads", None) => crate::transfer_store::Destination::Folder { path: downloads_dir(engine) },
                (other, _) => {
                    return error(ErrorCode::SendFailed, format!("{other:?} is not \"drive\" or \"downloads\""))
                }
            };
            transfers_reply(engine, engine.sends.accept(&transfer, destination).await)
        }
        Request::SendDecline { transfer } => transfers_reply(engine, engine.sends.decline(&transfer).await),
        Request::SendCancel { transfer } => transfers_reply(engine, engine.sends.cancel(&transfer).await),
        Request::MailSend { to, subject, body, attachments } => {
            match engine.send_owner_mail(to, subject, body, attachments).await {
                Ok(sent) => Reply::MailSent { message_id: sent.message_id, recipients: sent.recipients },
                Err(e) => error(ErrorCode::MailFailed, e),
            }
        }
        Request::FilesSearch { query } => {
            let offset = query.offset;
            match engine.drive_net.search_files(query).await {
                Ok((files, total)) => Reply::FilesPage { files, total, offset },
                Err(e) => error(ErrorCode::DriveFailed, e),
            }
        }
        Request::ImportSettings { change } => match engine.change_import_settings(&change).await {
            Ok(settings) => Reply::ImportSettings { settings },
            Err(e) => error(ErrorCode::InvalidMessage, e),
        },
        Request::MailSync => match engine.import_mail().await {
            Ok((messages, imported)) => Reply::MailSynced { messages, imported },
            Err(e) => error(ErrorCode::MailFailed, e),
        },
        Request::SocketToken => {
            Reply::SocketToken { port: engine.loopback_port, token: engine.socket_tokens.issue(now_ms()) }
        }
        Request::ConfirmCode { code } => match engine.node.confirm_code(&code).await {
            Ok(view) => Reply::Enrollment(Box::new(view)),
            Err(e) => error(ErrorCode::ConfirmFailed, e),
        },
    }
}

fn one(file: crate::api::FileView) -> Reply {
    Reply::File { file: Box::new(file) }
}

/// Changes the contact book and answers with the new list.
async fn people_edit(
    engine: &Engine,
    edit: impl FnOnce(&mut mailmesh_core::people::Contacts) -> Result<(), mailmesh_core::people::PeopleError>
        + Send
        + 'static,
) -> Reply {
    match engine.edit_people(edit).await {
        Ok(()) => Reply::People { people: engine.people_list() },
        Err(e) => error(ErrorCode::PeopleFailed, e),
    }
}

fn transfers_reply(engine: &Engine, outcome: Result<(), super::direct_send::SendError>) -> Reply {
    match outcome {
        Ok(()) => Reply::Transfers { transfers: engine.sends.list() },
        Err(e) => error(ErrorCode::SendFailed, e),
    }
}

/// The owner's Downloads folder, or one in the node's home if the system
/// names none.
fn downloads_dir(engine: &Engine) -> std::path::PathBuf {
    dirs::download_dir().unwrap_or_else(|| engine.home.root().join("downloads"))
}

fn error(code: ErrorCode, e: impl std::fmt::Display) -> Reply {
    Reply::Error { code, message: e.to_string() }
}

fn check(result: Result<(), MailError>) -> Check {
    match result {
        Ok(()) => Check { ok: true, code: None, message: "login works".into() },
        Err(e) => Check { ok: false, code: Some(e.code().into()), message: e.to_string() },
    }
}

async fn test_logins(input: &AccountInput) -> (Check, Check) {
    let (imap, smtp) = crate::mail::test_logins(&input.account, &input.password).await;
    (check(imap), check(smtp))
}

/// Saves the account only if both logins work, then mails the owner a
/// confirmation. A wrong password changes nothing.
async fn save_account(engine: &Engine, input: AccountInput, device_name: Option<String>, new_network: bool) -> Reply {
    if let Err(e) = input.account.validate() {
        return error(ErrorCode::InvalidAccount, e);
    }
    let (imap, smtp) = test_logins(&input).await;
    for (what, c) in [("IMAP", &imap), ("SMTP", &smtp)] {
        if !c.ok {
            return Reply::Error { code: ErrorCode::MailFailed, message: format!("{what}: {}", c.message) };
        }
    }
    let AccountInput { account, password } = input;
    setup_reply(engine.node.setup(account, password, device_name, new_network).await)
}

/// Completes the account's OAuth settings from the client files and
/// starts the sign-in: the URL for the browser.
async fn sign_in(
    engine: &Engine,
    mut account: crate::api::Account,
    device_name: Option<String>,
    new_network: bool,
) -> Reply {
    if let Err(e) = account.validate() {
        return error(ErrorCode::InvalidAccount, e);
    }
    let Some(found) = account.oauth.take() else {
        return error(ErrorCode::InvalidAccount, "this account has no OAuth 2 settings: sign in with a password");
    };
    let settings = match crate::mail::oauth::settings(&engine.home, &found.issuer.clone(), Some(found)) {
        Ok(settings) => settings,
        Err(e) => return error(ErrorCode::InvalidAccount, e),
    };
    let account = crate::api::Account { oauth: Some(settings), ..account };
    match engine.node.start_sign_in(account, device_name, new_network).await {
        Ok(url) => Reply::SignInUrl { url },
        Err(e) => error(ErrorCode::InvalidAccount, e),
    }
}

fn setup_reply(outcome: Result<crate::api::EnrollmentView, SetupError>) -> Reply {
    match outcome {
        Ok(view) => Reply::Enrollment(Box::new(view)),
        Err(e @ SetupError::AlreadyConfirmed) => error(ErrorCode::ConfirmFailed, e),
        Err(e @ SetupError::Disk(_)) => error(ErrorCode::Internal, e),
        Err(e @ SetupError::Mail(_)) => error(ErrorCode::MailFailed, e),
    }
}
