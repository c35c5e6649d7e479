//! Setting up a network and joining it, through an in-memory mailbox: the
//! first node is confirmed by the code its mail carries; a second node asks
//! to join, the first mails an approval, the code in it confirms the join,
//! and the welcome brings the network key. Every step goes by mail only.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use lettre::Message;
use mailmesh_core::identity::NodeSecrets;
use tokio::sync::{broadcast, watch};

use super::{NodeService, NodeState};
use crate::api::{Account, Secret, Security, Server};
use crate::engine::standing::{Standing, StandingWatch};
use crate::engine::testkit;
use crate::enroll::Enrollment;
use crate::home::NodeHome;
use crate::mail::MailError;
use crate::mailbox::memory::MemoryMailbox;
use crate::mailbox::{Found, MailAccount, MailConnector};

/// The owner's mailbox, shared by every node of the test.
#[derive(Clone, Default)]
struct SharedMailbox(Arc<Mutex<MemoryMailbox>>);

impl MailAccount for SharedMailbox {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>> {
        crate::sync::lock(&self.0).append("INBOX", message.formatted());
        Box::pin(async { Ok(()) })
    }

    fn mailmesh_mails(&self, after: u32) -> BoxFuture<'_, Result<(Vec<Found>, u32), MailError>> {
        let found = crate::sync::lock(&self.0).mailmesh_mails(after);
        Box::pin(async move { Ok(found) })
    }
}

impl SharedMailbox {
    fn connector(&self) -> MailConnector {
        let mailbox = self.clone();
        Arc::new(move |_: &Account, _: &Secret| Box::new(mailbox.clone()) as Box<dyn MailAccount>)
    }

    /// The `XXXX-XXXX` code in the text of the latest mail whose subject
    /// starts with `subject`.
    fn code_in(&self, subject: &str) -> String {
        let mailbox = crate::sync::lock(&self.0);
        let raw = mailbox.raw("INBOX").into_iter().rev().find_map(|raw| {
            let message = mail_parser::MessageParser::default().parse(raw)?;
            message.subject()?.starts_with(subject).then(|| message.body_text(0).map(|t| t.into_owned()))?
        });
        let text = raw.unwrap_or_else(|| panic!("no mail {subject:?}"));
        let code = text.lines().map(str::trim).find(|l| l.len() == 9 && l.as_bytes()[4] == b'-');
        code.unwrap_or_else(|| panic!("no code in {text}")).to_string()
    }
}

struct Node {
    service: NodeService,
    standing: StandingWatch,
    /// The last mailbox UID this node has read.
    read_to: u32,
    _home: tempfile::TempDir,
}

fn account() -> (Account, Secret) {
    let server = Server { host: "mail.example.org".into(), port: 1, security: Security::Plain };
    let account = Account {
        email: "owner@example.org".into(),
        imap: server.clone(),
        smtp: server,
        user: "owner".into(),
        tls_ca: None,
        accept_invalid_certs: false,
    };
    (account, Secret::new("password".into()))
}

fn node(mailbox: &SharedMailbox, seed: u8) -> Node {
    let secrets = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
    let dir = tempfile::tempdir().unwrap();
    let home = NodeHome::at(dir.path());
    home.ensure().unwrap();
    let config = crate::config::load_or_create(&home, 1).unwrap();
    let enrollment = Enrollment::load(&home, &secrets).unwrap();
    let state = NodeState { config, account: None, enrollment };
    let standing = watch::Sender::new(Standing::default());
    let events = broadcast::channel(64).0;
    let net = testkit::lone_drive(dir.path(), &secrets, standing.subscribe(), events.clone());
    let watch = standing.subscribe();
    let service = NodeService::new(home, secrets, 1, state, standing, events, mailbox.connector(), net);
    Node { service, standing: watch, read_to: 0, _home: dir }
}

impl Node {
    /// Reads the mailmesh mails that came since this node last looked, as
    /// the watcher would.
    async fn read_mail(&mut self, mailbox: &SharedMailbox) {
        let (found, last) = crate::sync::lock(&mailbox.0).mailmesh_mails(self.read_to);
        self.read_to = last;
        for mail in found {
            self.service.on_mail(mail).await;
        }
    }

    fn key_id(&self) -> Option<String> {
        self.standing.borrow().network.as_ref().map(|n| n.key.key_id())
    }
}

#[tokio::test]
async fn a_first_node_is_confirmed_by_mail_and_a_second_joins_by_mail_alone() {
    let mailbox = SharedMailbox::default();
    let (laptop, mut phone) = (node(&mailbox, 1), node(&mailbox, 2));
    let mut laptop = laptop;
    let (account, password) = account();

    // The laptop: account saved, confirmation mailed, code typed.
    let view = laptop.service.begin_confirmation(account.clone(), password.clone(), Some("laptop".into())).await;
    assert_eq!(view.unwrap().state, "awaiting_confirmation");
    assert!(laptop.service.confirm_code("AAAA-AAAA").await.is_err(), "a wrong code is refused");
    let code = mailbox.code_in("Confirm mailmesh on laptop");
    let view = laptop.service.confirm_code(&code).await.unwrap();
    assert_eq!(view.state, "enrolled");
    let network_key = laptop.key_id().expect("in a network");
    assert!(super::finds_network(&crate::sync::lock(&mailbox.0).mailmesh_mails(0).0), "the roster is mailed");

    // The phone finds the network and asks to join.
    let view = phone.service.join_found_network(account, password, Some("phone".into())).await.unwrap();
    assert_eq!(view.state, "awaiting_approval");
    laptop.read_mail(&mailbox).await; // the join request: an approval is mailed
    phone.read_mail(&mailbox).await; // the approval, kept
    let wrong = phone.service.confirm_code("BBBB-BBBB").await.unwrap_err();
    assert!(wrong.contains("does not match"), "{wrong}");
    let code = mailbox.code_in("Approve phone for mailmesh");
    phone.service.confirm_code(&code).await.unwrap(); // a join proof is mailed
    laptop.read_mail(&mailbox).await; // the proof: roster signed, welcome mailed
    phone.read_mail(&mailbox).await; // the welcome

    assert_eq!(phone.service.enrollment_view().await.state, "enrolled");
    assert_eq!(phone.key_id(), Some(network_key), "the same network key");
    let members = |node: &Node| node.standing.borrow().network.as_ref().map(|n| n.members.len());
    assert_eq!((members(&laptop), members(&phone)), (Some(2), Some(2)));
}

#[tokio::test]
async fn a_removed_device_gets_no_new_key_and_learns_it_is_out() {
    let mailbox = SharedMailbox::default();
    let (mut laptop, mut phone) = (node(&mailbox, 1), node(&mailbox, 2));
    let (account, password) = account();
    laptop.service.begin_confirmation(account.clone(), password.clone(), Some("laptop".into())).await.unwrap();
    laptop.service.confirm_code(&mailbox.code_in("Confirm mailmesh on laptop")).await.unwrap();
    phone.service.join_found_network(account, password, Some("phone".into())).await.unwrap();
    laptop.read_mail(&mailbox).await;
    phone.read_mail(&mailbox).await;
    phone.service.confirm_code(&mailbox.code_in("Approve phone for mailmesh")).await.unwrap();
    laptop.read_mail(&mailbox).await;
    phone.read_mail(&mailbox).await;
    let old_key = laptop.key_id().unwrap();
    assert_eq!(phone.key_id(), Some(old_key.clone()));

    // The owner removes the phone from the laptop, confirming by mail.
    let phone_id = phone.service.secrets.node_id().to_string();
    laptop.service.request_removal(&phone_id).await.unwrap();
    assert!(laptop.service.removal_pending());
    laptop.service.confirm_code(&mailbox.code_in("Remove phone from mailmesh?")).await.unwrap();
    let new_key = laptop.key_id().unwrap();
    assert_ne!(new_key, old_key, "a new network key");

    // The rekey mail opens for no one but the remaining members.
    phone.read_mail(&mailbox).await;
    assert_eq!(phone.service.enrollment_view().await.state, "removed");
    assert_eq!(phone.key_id(), None, "the phone keeps no network key");
}
