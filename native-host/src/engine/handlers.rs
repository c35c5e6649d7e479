//! The handler map of the control socket: one arm per request type.

use crate::account::{self};
use crate::api::{AccountChecks, AccountInput, Check, EngineState, ErrorCode, Reply, Request, PROTOCOL_VERSION};
use crate::enroll::{save_pending, start_confirmation, ConfirmationMail, Enrollment, Proof};
use crate::mail::{imap, smtp, MailError};

use super::{now_ms, Engine};

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
        Request::AccountTest { account } => {
            let (imap, smtp) = test_logins(&account).await;
            Reply::AccountTest(Box::new(AccountChecks { imap, smtp }))
        }
        Request::AccountSave { account, device_name } => save_account(engine, account, device_name).await,
        Request::ConfirmCode { code } => match engine.confirm(Proof::Code(&code)).await {
            Ok(view) => Reply::Enrollment(Box::new(view)),
            Err(e) => error(ErrorCode::ConfirmFailed, e),
        },
    }
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
    let (imap, smtp) = tokio::join!(
        imap::test_login(&input.account, &input.password),
        smtp::test_login(&input.account, &input.password)
    );
    (check(imap), check(smtp))
}

/// Saves the account only if both logins work, then mails the owner a
/// confirmation. A wrong password changes nothing.
async fn save_account(engine: &Engine, input: AccountInput, device_name: Option<String>) -> Reply {
    if let Err(e) = input.account.validate() {
        return error(ErrorCode::InvalidAccount, e);
    }
    let (imap, smtp) = test_logins(&input).await;
    for (what, c) in [("IMAP", &imap), ("SMTP", &smtp)] {
        if !c.ok {
            return Reply::Error { code: ErrorCode::MailFailed, message: format!("{what}: {}", c.message) };
        }
    }
    let (pending, message) = {
        let mut guard = engine.state.lock().await;
        let state = &mut *guard;
        if state.enrollment.network().is_some() {
            return Reply::Error { code: ErrorCode::ConfirmFailed, message: "this node is already confirmed".into() };
        }
        if let Some(name) = device_name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
            state.config.device_name = name.chars().take(mailmesh_core::roster::MAX_DEVICE_NAME).collect();
            if let Err(e) = crate::config::save(&engine.home, &state.config) {
                return error(ErrorCode::Internal, e);
            }
        }
        let fingerprint = engine.secrets.node_id().fingerprint();
        let mail = ConfirmationMail {
            account: &input.account,
            device_name: &state.config.device_name,
            fingerprint: &fingerprint,
            loopback_port: engine.loopback_port,
        };
        match start_confirmation(mail, now_ms()) {
            Ok(x) => x,
            Err(e) => return error(ErrorCode::Internal, e),
        }
    };
    // Sent without holding the state, so status requests stay quick.
    if let Err(e) = smtp::send(&input.account, &input.password, message).await {
        return error(ErrorCode::MailFailed, format!("the confirmation mail could not be sent: {e}"));
    }
    tracing::info!(email = %input.account.email, "confirmation mail sent");
    let mut state = engine.state.lock().await;
    if let Err(e) = account::save(&engine.home, &input.account, &input.password) {
        return error(ErrorCode::Internal, e);
    }
    if let Err(e) = save_pending(&engine.home, &pending) {
        return error(ErrorCode::Internal, e);
    }
    state.account = Some((input.account, input.password));
    state.enrollment = Enrollment::Pending(pending);
    engine.notify(Reply::StatusChanged);
    Reply::Enrollment(Box::new(engine.enrollment_view(&state)))
}
