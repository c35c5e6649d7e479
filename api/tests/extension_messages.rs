//! The extension speaks this crate's messages through one typed module,
//! `extension/shared/messages/native.js`. Every request here must have a
//! builder there and every reply or event a name, and the protocol versions
//! must agree; otherwise a page could never ask for a feature, or would not
//! know an answer it gets.

use std::collections::BTreeSet;

use mailmesh_api::{
    Account, AccountChecks, AccountInput, Check, EngineState, EnrollmentView, ErrorCode, FileView, Health, Reply,
    Request, Secret, Security, Server, TransferView, PROTOCOL_VERSION,
};

fn native_js() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../extension/shared/messages/native.js");
    std::fs::read_to_string(path).expect("the extension's native message module")
}

/// The `type` a message is sent with.
fn tag<T: serde::Serialize>(message: &T) -> String {
    serde_json::to_value(message).unwrap()["type"].as_str().unwrap().to_string()
}

/// One of every request. The match below makes a new variant a compile
/// error here until it has a sample.
fn every_request() -> Vec<Request> {
    let server = Server { host: "h".into(), port: 1, security: Security::Tls };
    let account = Account {
        email: "a@b.c".into(),
        imap: server.clone(),
        smtp: server,
        user: "a".into(),
        tls_ca: None,
        accept_invalid_certs: false,
        oauth: None,
    };
    let input = AccountInput { account, password: Secret::new("p".into()) };
    let s = String::new;
    let all = vec![
        Request::Hello { client: s(), version: s() },
        Request::Status,
        Request::Ping,
        Request::Stop,
        Request::StartEngine,
        Request::AccountDiscover { email: s(), tls_ca: None },
        Request::AccountTest { account: input.clone() },
        Request::SignInStart { account: input.account.clone(), device_name: None, new_network: false },
        Request::AccountSave { account: input, device_name: None, new_network: false },
        Request::SignInAgain,
        Request::NetworkNew,
        Request::ConfirmCode { code: s() },
        Request::NodeRemove { node_id: s() },
        Request::JoinApprove { node_id: s() },
        Request::JoinDecline { node_id: s() },
        Request::AccountPassword { password: Secret::new("p".into()) },
        Request::SocketToken,
        Request::FilesAdd { path: s() },
        Request::FilesList,
        Request::FilesGet { file_id: s(), path: s() },
        Request::FilesRemove { file_id: s() },
        Request::FilesRename { file_id: s(), name: s() },
        Request::MailSync,
        Request::ImportSettings { change: Default::default() },
        Request::FilesSearch { query: Default::default() },
        Request::FilesRepair,
        Request::PeopleList,
        Request::PeopleVerify { email: s() },
        Request::PeopleRename { email: s(), name: s() },
        Request::PeopleBlock { email: s(), blocked: true },
        Request::PeopleRemove { email: s() },
        Request::ChatList,
        Request::ChatShow { conversation: s(), limit: Some(1) },
        Request::ChatSend { conversation: s(), text: s() },
        Request::ChatRead { conversation: s() },
        Request::ChatGroupCreate { title: s(), members: vec![] },
        Request::ChatGroupMembers { conversation: s(), add: vec![], remove: vec![] },
        Request::SendFile { to: s(), path: None, file_id: None },
        Request::SendList,
        Request::SendAccept { transfer: s(), to: s(), dir: None },
        Request::SendDecline { transfer: s() },
        Request::SendCancel { transfer: s() },
        Request::CallsList,
        Request::MailSend { to: vec![], subject: s(), body: s(), attachments: vec![] },
    ];
    for request in &all {
        match request {
            Request::Hello { .. }
            | Request::Status
            | Request::Ping
            | Request::Stop
            | Request::StartEngine
            | Request::AccountDiscover { .. }
            | Request::SignInStart { .. }
            | Request::SignInAgain
            | Request::AccountTest { .. }
            | Request::AccountSave { .. }
            | Request::NetworkNew
            | Request::ConfirmCode { .. }
            | Request::NodeRemove { .. }
            | Request::JoinApprove { .. }
            | Request::JoinDecline { .. }
            | Request::AccountPassword { .. }
            | Request::SocketToken
            | Request::FilesAdd { .. }
            | Request::FilesList
            | Request::FilesGet { .. }
            | Request::FilesRemove { .. }
            | Request::FilesRename { .. }
            | Request::MailSync
            | Request::ImportSettings { .. }
            | Request::FilesSearch { .. }
            | Request::FilesRepair
            | Request::PeopleList
            | Request::PeopleVerify { .. }
            | Request::PeopleRename { .. }
            | Request::PeopleBlock { .. }
            | Request::PeopleRemove { .. }
            | Request::ChatList
            | Request::ChatShow { .. }
            | Request::ChatSend { .. }
            | Request::ChatRead { .. }
            | Request::ChatGroupCreate { .. }
            | Request::ChatGroupMembers { .. }
            | Request::SendFile { .. }
            | Request::SendList
            | Request::SendAccept { .. }
            | Request::SendDecline { .. }
            | Request::SendCancel { .. }
            | Request::CallsList
            | Request::MailSend { .. } => {}
        }
    }
    all
}

/// One of every reply and event, kept whole by a match as above.
fn every_reply() -> Vec<Reply> {
    let s = String::new;
    let check = || Check { ok: true, code: None, message: s() };
    let file = FileView {
        id: s(),
        name: s(),
        size: 0,
        blake3: s(),
        media_type: s(),
        kind: s(),
        added_ms: 0,
        origin: None,
        health: Health { state: s(), fragments_present: 0, fragments_total: 0, needed_per_chunk: 0 },
    };
    let transfer = TransferView {
        id: s(),
        direction: s(),
        peer: s(),
        name: s(),
        size: 0,
        done: 0,
        state: s(),
        detail: s(),
        rate_bps: 0,
        eta_secs: None,
        saved_as: None,
    };
    let conversation = mailmesh_api::ConversationView {
        id: s(),
        kind: s(),
        title: s(),
        members: vec![],
        unread: 0,
        last_at: 0,
        last_text: s(),
    };
    let message = mailmesh_api::MessageView {
        id: s(),
        author: s(),
        sent_at: 0,
        kind: s(),
        text: s(),
        verified: true,
        pending: vec![],
        delivered: vec![],
        read: vec![],
    };
    let status: mailmesh_api::Status = serde_json::from_value(serde_json::json!({
        "node_id": "", "fingerprint": "", "public_key": "", "x25519_public_key": "", "device_name": "",
        "version": "", "core_version": "", "protocol": 1, "home": "", "engine_pid": 1, "started_at": 0,
        "loopback_port": 0, "account_email": null, "enrolled": false, "enrollment": "none", "network_id": null,
        "network_key_id": null, "roster": [], "link_port": 0, "peers": []
    }))
    .unwrap();
    let all = vec![
        Reply::Hello { host_version: s(), core_version: s(), protocol: 1 },
        Reply::Status(Box::new(status)),
        Reply::Pong,
        Reply::Stopping,
        Reply::AccountTest(Box::new(AccountChecks { imap: check(), smtp: check() })),
        Reply::ServersFound(Box::new(mailmesh_api::ServersFound {
            provider: None,
            imap: None,
            smtp: None,
            user: None,
            oauth: None,
            oauth_only: false,
            source: None,
            advice: None,
        })),
        Reply::SignInUrl { url: s() },
        Reply::Enrollment(Box::new(EnrollmentView {
            state: s(),
            email: None,
            network_id: None,
            networks_found: vec![],
        })),
        Reply::RemovalRequested { node_id: s() },
        Reply::SocketToken { port: 0, token: s() },
        Reply::Files { files: vec![] },
        Reply::File { file: Box::new(file) },
        Reply::MailSynced { messages: 0, imported: 0 },
        Reply::ImportSettings { settings: Default::default() },
        Reply::FilesPage { files: vec![], total: 0, offset: 0 },
        Reply::People { people: vec![] },
        Reply::Conversations { conversations: vec![], unread: 0 },
        Reply::Conversation {
            conversation: Box::new(mailmesh_api::ConversationDetail {
                summary: conversation,
                messages: vec![],
                earlier: 0,
            }),
        },
        Reply::ChatSent { message: Box::new(message) },
        Reply::ChatDone { conversation: s() },
        Reply::Calls { calls: vec![] },
        Reply::Transfers { transfers: vec![] },
        Reply::Transfer { transfer: Box::new(transfer) },
        Reply::MailSent { message_id: s(), recipients: 0 },
        Reply::Error { code: ErrorCode::Internal, message: s() },
        Reply::StatusChanged,
        Reply::PeersChanged,
        Reply::FilesChanged,
        Reply::ChatChanged,
        Reply::TransfersChanged,
        Reply::CallsChanged,
        Reply::EngineState { state: EngineState::Up, message: s() },
    ];
    for reply in &all {
        match reply {
            Reply::Hello { .. }
            | Reply::Status(_)
            | Reply::Pong
            | Reply::Stopping
            | Reply::AccountTest(_)
            | Reply::ServersFound(_)
            | Reply::SignInUrl { .. }
            | Reply::Enrollment(_)
            | Reply::RemovalRequested { .. }
            | Reply::SocketToken { .. }
            | Reply::Files { .. }
            | Reply::File { .. }
            | Reply::MailSynced { .. }
            | Reply::ImportSettings { .. }
            | Reply::FilesPage { .. }
            | Reply::People { .. }
            | Reply::Conversations { .. }
            | Reply::Conversation { .. }
            | Reply::ChatSent { .. }
            | Reply::ChatDone { .. }
            | Reply::Calls { .. }
            | Reply::Transfers { .. }
            | Reply::Transfer { .. }
            | Reply::MailSent { .. }
            | Reply::Error { .. }
            | Reply::StatusChanged
            | Reply::PeersChanged
            | Reply::FilesChanged
            | Reply::ChatChanged
            | Reply::TransfersChanged
            | Reply::CallsChanged
            | Reply::EngineState { .. } => {}
        }
    }
    all
}

/// The values after `key: '` on the code lines (not comments) of the part
/// of `js` from `start` to the next line that is only `};`.
fn values_in_block(js: &str, start: &str, key: &str) -> BTreeSet<String> {
    let block = js.split(start).nth(1).unwrap_or_default();
    let block = block.split("\n};").next().unwrap_or_default();
    let code = block.lines().filter(|l| !["/**", "*", "//"].iter().any(|c| l.trim_start().starts_with(c)));
    let pattern = format!("{key}: '");
    code.flat_map(|line| {
        line.match_indices(&pattern)
            .map(|(at, _)| line[at + pattern.len()..].split('\'').next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    })
    .collect()
}

#[test]
fn every_request_has_a_builder_in_the_extension() {
    let js = native_js();
    let built = values_in_block(&js, "export const request = {", "type");
    let missing: Vec<String> = every_request().iter().map(tag).filter(|t| !built.contains(t)).collect();
    assert!(missing.is_empty(), "requests without a builder in native.js: {missing:?}");
}

#[test]
fn every_reply_and_event_is_named_in_the_extension() {
    let js = native_js();
    let named = values_in_block(&js, "export const reply = {", "");
    let missing: Vec<String> = every_reply().iter().map(tag).filter(|t| !named.contains(t)).collect();
    assert!(missing.is_empty(), "replies and events native.js does not name: {missing:?}");
}

#[test]
fn the_protocol_versions_agree() {
    assert!(
        native_js().contains(&format!("export const PROTOCOL_VERSION = {PROTOCOL_VERSION};")),
        "native.js must say PROTOCOL_VERSION = {PROTOCOL_VERSION}"
    );
}

#[test]
fn the_checker_notices_a_missing_name() {
    let js = "export const request = {\n  /** @returns {{type: 'stop'}} */\n  ping: () => ({ type: 'ping' }),\n};\nconst other = { type: 'status' };";
    let built = values_in_block(js, "export const request = {", "type");
    assert_eq!(built, BTreeSet::from(["ping".to_string()]), "comments and code outside the block do not count");
}
