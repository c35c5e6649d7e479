//! A `mail_send` to an SMTP server that stalls does not hold up the other
//! requests on the same control connection: the real engine, a real
//! socket, and a server that accepts the connection and says nothing until
//! the test lets it hang up. (The engine's own limit on a silent server is
//! 15 seconds; status is answered in milliseconds.)

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mailmesh_api::{Account, Request, Secret, Security, Server};
use serde_json::Value;

fn mailmesh(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailmesh"));
    cmd.arg("--home").arg(home);
    cmd
}

/// An SMTP server that accepts and stays silent until `release` is set;
/// then it hangs up.
fn stalling_smtp(release: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let release = release.clone();
            std::thread::spawn(move || {
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                drop(stream);
            });
        }
    });
    port
}

#[test]
fn a_stalled_smtp_server_delays_no_other_request_on_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let home = mailmesh_host::home::NodeHome::at(dir.path());
    home.ensure().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let smtp_port = stalling_smtp(release.clone());
    let server = |port| Server { host: "127.0.0.1".into(), port, security: Security::Plain };
    let account = Account {
        email: "owner@example.org".into(),
        // Nothing listens there: the mailbox watcher just backs off.
        imap: server(1),
        smtp: server(smtp_port),
        user: "owner".into(),
        tls_ca: None,
        accept_invalid_certs: false,
        oauth: None,
    };
    mailmesh_host::account::save(&home, &account, &Secret::new("password".into())).unwrap();
    let out = mailmesh(dir.path()).args(["run", "--detach"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut socket = UnixStream::connect(home.socket()).unwrap();
    let send = Request::MailSend {
        to: vec!["friend@example.org".into()],
        subject: "hello".into(),
        body: "a mail the server will not take yet".into(),
        attachments: Vec::new(),
    };
    for (id, request) in [(1, send), (2, Request::Status), (3, Request::SocketToken)] {
        writeln!(socket, "{}", request.encode_line(id)).unwrap();
    }
    let mut replies = BufReader::new(socket.try_clone().unwrap()).lines();
    let mut next_reply = || -> Value {
        loop {
            let reply: Value = serde_json::from_str(&replies.next().unwrap().unwrap()).unwrap();
            // Events carry no id; only replies are counted here.
            if reply.get("id").is_some_and(|id| !id.is_null()) {
                return reply;
            }
        }
    };
    // Status and the token come back while the SMTP server still stalls.
    let (first, second) = (next_reply(), next_reply());
    let mut answered: Vec<u64> = [&first, &second].iter().map(|r| r["id"].as_u64().unwrap()).collect();
    answered.sort();
    assert_eq!(answered, vec![2, 3], "status and the token first: {first} {second}");

    // The server gives up: the send ends with an error in words.
    release.store(true, Ordering::SeqCst);
    let sent = next_reply();
    assert_eq!(sent["id"], 1);
    assert_eq!(sent["type"], "error", "{sent}");
    assert!(sent["message"].as_str().unwrap().contains("mail server"), "in words: {sent}");
    let _ = mailmesh(dir.path()).arg("stop").output();
}
