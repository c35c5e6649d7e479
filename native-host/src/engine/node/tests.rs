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
use crate::mailbox::{Found, MailAccount, MailConnector, FOLDER, INBOX};

/// The owner's mailbox, shared by every node of the test; its servers can
/// be made to refuse.
#[derive(Clone, Default)]
struct SharedMailbox(Arc<Mutex<MemoryMailbox>>, Arc<std::sync::atomic::AtomicBool>);

impl MailAccount for SharedMailbox {
    fn login(&self) -> BoxFuture<'_, Result<(), MailError>> {
        Box::pin(async { Ok(()) })
    }

    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>> {
        if self.1.load(std::sync::atomic::Ordering::Relaxed) {
            return Box::pin(async { Err(MailError::Protocol("the server refused (test)".into())) });
        }
        crate::sync::lock(&self.0).append(INBOX, message.formatted());
        Box::pin(async { Ok(()) })
    }

    fn file(&self, message: Message) -> BoxFuture<'_, Result<(), MailError>> {
        if self.1.load(std::sync::atomic::Ordering::Relaxed) {
            return Box::pin(async { Err(MailError::Protocol("the server refused (test)".into())) });
        }
        crate::sync::lock(&self.0).append(FOLDER, message.formatted());
        Box::pin(async { Ok(()) })
    }

    fn mailmesh_mails(&self, kinds: &'static [crate::mailbox::Kind]) -> BoxFuture<'_, Result<Vec<Found>, MailError>> {
        let mailbox = crate::sync::lock(&self.0);
        let mut found: Vec<Found> = [FOLDER, INBOX].into_iter().flat_map(|f| mailbox.mailmesh_mails(f, 0).0).collect();
        found.retain(|m| kinds.contains(&m.kind));
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
    /// The last UIDs this node has read, in mailmesh's folder and INBOX.
    read_to: [u32; 2],
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
        oauth: None,
    };
    (account, Secret::new("password".into()))
}

fn node(mailbox: &SharedMailbox, seed: u8) -> Node {
    node_at(mailbox, NodeSecrets::from_seeds([seed; 32], [seed; 32]), tempfile::tempdir().unwrap())
}

/// A node started on a home that may hold an earlier run's state.
fn node_at(mailbox: &SharedMailbox, secrets: NodeSecrets, dir: tempfile::TempDir) -> Node {
    let home = NodeHome::at(dir.path());
    home.ensure().unwrap();
    let config = crate::config::load_or_create(&home, 1).unwrap();
    let enrollment = Enrollment::load(&home, &secrets).unwrap();
    let account = crate::account::load(&home).unwrap();
    let state = NodeState { config, account, enrollment };
    let standing = watch::Sender::new(Standing::default());
    let events = broadcast::channel(64).0;
    let net = testkit::lone_drive(dir.path(), &secrets, standing.subscribe(), events.clone());
    let watch = standing.subscribe();
    let service = NodeService::new(home, secrets, 1, state, standing, events, mailbox.connector(), net);
    Node { service, standing: watch, read_to: [0, 0], _home: dir }
}

impl Node {
    /// Reads the mailmesh mails that came since this node last looked, as
    /// the watcher would.
    async fn read_mail(&mut self, mailbox: &SharedMailbox) {
        for (folder, read_to) in [FOLDER, INBOX].into_iter().zip(&mut self.read_to) {
            let (found, last) = crate::sync::lock(&mailbox.0).mailmesh_mails(folder, *read_to);
            *read_to = last;
            for mail in found {
                self.service.on_mail(mail).await;
            }
        }
    }

    /// The owner approves `joiner` on this member.
    async fn approve(&self, joiner: &Node) {
        self.service.approve_join(&joiner.service.secrets.node_id().to_string()).await.unwrap();
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
    let view = laptop.service.setup(account.clone(), password.clone(), Some("laptop".into()), false).await;
    assert_eq!(view.unwrap().state, "awaiting_confirmation", "no network in the mailbox yet");
    assert!(laptop.service.confirm_code("AAAA-AAAA").await.is_err(), "a wrong code is refused");
    let code = mailbox.code_in("Confirm mailmesh on laptop");
    let view = laptop.service.confirm_code(&code).await.unwrap();
    assert_eq!(view.state, "enrolled");
    let network_key = laptop.key_id().expect("in a network");
    // The phone finds the network (the roster the laptop mailed) and asks to join.
    let view = phone.service.setup(account, password, Some("phone".into()), false).await.unwrap();
    assert_eq!(view.state, "awaiting_approval");
    let found: Vec<_> =
        view.networks_found.iter().flat_map(|n| n.members.iter().map(|m| m.device_name.as_str())).collect();
    assert_eq!(found, vec!["laptop"], "the network found is shown with its members");
    laptop.read_mail(&mailbox).await; // the join request: it waits for the owner
    let waiting = laptop.service.join_requests().await;
    assert_eq!((waiting.len(), waiting[0].device_name.as_str()), (1, "phone"));
    assert_eq!(waiting[0].fingerprint, phone.service.secrets.node_id().fingerprint());
    laptop.service.approve_join(&waiting[0].node_id).await.unwrap(); // an approval is mailed
    assert!(laptop.service.join_requests().await.is_empty());
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
    let (laptop, mut phone) = laptop_and_phone(&mailbox, 0).await;
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

/// Sets up a laptop and a phone in one network; the laptop's drive holds
/// `files` files.
async fn laptop_and_phone(mailbox: &SharedMailbox, files: usize) -> (Node, Node) {
    let mut laptop = node(mailbox, 1);
    let (account, password) = account();
    laptop.service.begin_confirmation(account, password, Some("laptop".into())).await.unwrap();
    laptop.service.confirm_code(&mailbox.code_in("Confirm mailmesh on laptop")).await.unwrap();
    let phone = join_through(mailbox, &mut laptop, 2, "phone").await;
    let key = laptop.network_key();
    for i in 0..files {
        let bytes = testkit::content(100 + i);
        laptop.service.drive.drive().add_bytes(&key, &format!("file-{i}"), "text/plain", None, &bytes, 1).unwrap();
    }
    (laptop, phone)
}

/// A device `name` that joins through `member`: it asks by mail, the owner
/// approves it on the member and types the mailed code on it.
async fn join_through(mailbox: &SharedMailbox, member: &mut Node, seed: u8, name: &str) -> Node {
    let mut joiner = node(mailbox, seed);
    let (account, password) = account();
    joiner.service.join_found_network(account, password, Some(name.into())).await.unwrap();
    member.read_mail(mailbox).await;
    member.approve(&joiner).await;
    joiner.read_mail(mailbox).await;
    joiner.service.confirm_code(&mailbox.code_in(&format!("Approve {name} for mailmesh"))).await.unwrap();
    member.read_mail(mailbox).await;
    joiner.read_mail(mailbox).await;
    joiner
}

impl Node {
    fn network_key(&self) -> mailmesh_core::drive::NetworkKey {
        self.service.state.try_lock().unwrap().enrollment.network().unwrap().key.clone()
    }

    /// Whether every file of this node's drive opens with its network key.
    fn every_file_opens(&self) -> bool {
        let key = self.network_key();
        let out = self._home.path().join("restored");
        let files = self.service.drive.drive().list().unwrap();
        !files.is_empty() && files.iter().all(|f| self.service.drive.drive().get(&key, &f.id, &out).is_ok())
    }

    /// The engine killed and started again on the same home.
    fn restart(self, mailbox: &SharedMailbox) -> Node {
        let Node { service, read_to, _home, .. } = self;
        let seed = service.secrets.clone();
        drop(service);
        let mut again = node_at(mailbox, seed, _home);
        again.read_to = read_to;
        again
    }
}

#[tokio::test]
async fn a_removal_killed_midway_through_the_rewrap_finishes_at_the_next_start() {
    let mailbox = SharedMailbox::default();
    let (laptop, phone) = laptop_and_phone(&mailbox, 10).await;
    let old_key = laptop.key_id().unwrap();
    let phone_id = phone.service.secrets.node_id().to_string();
    laptop.service.request_removal(&phone_id).await.unwrap();
    let code = mailbox.code_in("Remove phone from mailmesh?");

    // Killed after rewrapping 3 of the 10 records.
    laptop.service.drive.drive().rewrap_stops_after.store(3, std::sync::atomic::Ordering::Relaxed);
    let _ = laptop.service.confirm_code(&code).await;
    let mut laptop = laptop.restart(&mailbox);
    laptop.service.finish_rotation().await.unwrap();

    assert_ne!(laptop.key_id().unwrap(), old_key, "the new key is in use");
    assert!(laptop.every_file_opens(), "every file opens under the key the node now holds");
    laptop.read_mail(&mailbox).await;
    let members = laptop.standing.borrow().network.as_ref().map(|n| n.members.len());
    assert_eq!(members, Some(1), "the phone is off the roster");
}

#[tokio::test]
async fn a_rekey_mail_the_server_refused_is_sent_again_until_it_goes() {
    let mailbox = SharedMailbox::default();
    let (mut laptop, phone) = laptop_and_phone(&mailbox, 2).await;
    // A tablet joins too: it is the member that must get the new key.
    let mut tablet = join_through(&mailbox, &mut laptop, 3, "tablet").await;
    assert_eq!(tablet.key_id(), laptop.key_id());

    laptop.service.request_removal(&phone.service.secrets.node_id().to_string()).await.unwrap();
    let code = mailbox.code_in("Remove phone from mailmesh?");
    mailbox.1.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = laptop.service.confirm_code(&code).await.unwrap_err();
    assert!(refused.contains("mailed again"), "{refused}");
    assert!(laptop.every_file_opens(), "the laptop uses the new key already");
    tablet.read_mail(&mailbox).await;
    assert_ne!(tablet.key_id(), laptop.key_id(), "no rekey reached the mailbox");

    // The server takes mail again: the next pass sends the rekey.
    mailbox.1.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut laptop = laptop.restart(&mailbox);
    laptop.service.finish_rotation().await.unwrap();
    tablet.read_mail(&mailbox).await;
    assert_eq!(tablet.key_id(), laptop.key_id(), "the tablet has the new key");
    laptop.service.finish_rotation().await.unwrap();
    laptop.read_mail(&mailbox).await;
    let mails = crate::sync::lock(&mailbox.0).mailmesh_mails(FOLDER, 0).0;
    let rekeys = mails.iter().filter(|m| m.kind == crate::mailbox::Kind::Rekey).count();
    assert_eq!(rekeys, 1, "sent once it went, not again");
}

#[tokio::test]
async fn without_randomness_a_removal_draws_no_key_at_all() {
    let mailbox = SharedMailbox::default();
    let (laptop, phone) = laptop_and_phone(&mailbox, 1).await;
    let old_key = laptop.key_id();
    laptop.service.request_removal(&phone.service.secrets.node_id().to_string()).await.unwrap();
    let code = mailbox.code_in("Remove phone from mailmesh?");
    let refused =
        crate::rng::test_hook::without_randomness_async(laptop.service.confirm_code(&code)).await.unwrap_err();
    assert!(refused.contains("no randomness"), "{refused}");
    assert_eq!(laptop.key_id(), old_key, "the old key stays; no key of zeros");
    assert!(laptop.every_file_opens());
}

/// How many mails in the mailbox have a subject starting with `subject`.
fn mails_titled(mailbox: &SharedMailbox, subject: &str) -> usize {
    let mailbox = crate::sync::lock(&mailbox.0);
    mailbox
        .raw("INBOX")
        .into_iter()
        .filter_map(|raw| mail_parser::MessageParser::default().parse(raw))
        .filter(|m| m.subject().is_some_and(|s| s.starts_with(subject)))
        .count()
}

#[tokio::test]
async fn the_mailbox_alone_lets_no_device_in_a_member_must_approve_it() {
    let mailbox = SharedMailbox::default();
    let (mut laptop, mut phone) = laptop_and_phone(&mailbox, 0).await;
    // The phone is removed (stolen). Whoever holds it knows the mail
    // password: a fresh node key and a join request, by mail alone.
    laptop.service.request_removal(&phone.service.secrets.node_id().to_string()).await.unwrap();
    laptop.service.confirm_code(&mailbox.code_in("Remove phone from mailmesh?")).await.unwrap();
    phone.read_mail(&mailbox).await;
    let mut thief = node(&mailbox, 9);
    let (account, password) = account();
    thief.service.join_found_network(account, password, Some("phone".into())).await.unwrap();
    laptop.read_mail(&mailbox).await;
    thief.read_mail(&mailbox).await;
    assert_eq!(mails_titled(&mailbox, "Approve phone for mailmesh"), 1, "only the first, approved join's code");
    assert_eq!(thief.service.enrollment_view().await.state, "awaiting_approval");
    assert!(thief.service.confirm_code(&mailbox.code_in("Approve phone for mailmesh")).await.is_err());

    // The member shows it, with its fingerprint; the owner declines.
    let waiting = laptop.service.join_requests().await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].fingerprint, thief.service.secrets.node_id().fingerprint());
    laptop.service.decline_join(&waiting[0].node_id).await.unwrap();
    assert!(laptop.service.join_requests().await.is_empty());
    assert!(laptop.service.approve_join(&waiting[0].node_id).await.is_err(), "declined is gone");
    assert!(laptop.standing.borrow().network.as_ref().is_some_and(|n| n.members.len() == 1));

    // The removal asks for a new mail password until it is given.
    let advised = |node: &Node| node.service.state.try_lock().map(|s| s.config.change_password).unwrap_or(false);
    assert!(advised(&laptop));
    laptop.service.change_password(Secret::new("new password".into())).await.unwrap();
    assert!(!advised(&laptop));
    assert_eq!(laptop.service.account().await.map(|(_, p)| p.expose().to_string()), Some("new password".into()));
}

#[tokio::test]
async fn forged_join_requests_send_no_mail_and_wait_in_a_bounded_list() {
    let mailbox = SharedMailbox::default();
    let (mut laptop, _phone) = laptop_and_phone(&mailbox, 0).await;
    let before = crate::sync::lock(&mailbox.0).raw("INBOX").len();
    for seed in 100..130u8 {
        let forger = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
        let request = mailmesh_core::join::JoinRequest {
            node: forger.public(),
            join_secret: [seed; 32],
            loopback_port: 1,
            created_ms: 0,
            device_name: format!("evil\r\nBcc: all {seed}"),
        };
        let (account, _) = account();
        let mail = crate::mailbox::build(
            &account,
            crate::mailbox::Kind::JoinRequest,
            "join",
            "x".into(),
            request.encode(&forger),
        );
        crate::sync::lock(&mailbox.0).append("INBOX", mail.unwrap().formatted());
    }
    laptop.read_mail(&mailbox).await;
    let after = crate::sync::lock(&mailbox.0).raw("INBOX").len();
    assert_eq!(after, before + 30, "thirty requests made the owner's account send nothing");
    let waiting = laptop.service.join_requests().await;
    assert_eq!(waiting.len(), crate::joining::MAX_PENDING_JOINS);
    assert!(waiting.iter().all(|w| !w.device_name.contains(['\r', '\n'])), "no newline reaches a name shown or mailed");
}

#[tokio::test]
async fn a_foreign_roster_in_the_mailbox_is_shown_and_the_owner_can_make_their_own_network() {
    let mailbox = SharedMailbox::default();
    // Someone mails the owner a valid roster of a network of their own.
    let stranger = NodeSecrets::from_seeds([66; 32], [66; 32]);
    let roster = mailmesh_core::roster::Roster::genesis(&stranger, "definitely yours", 1).unwrap();
    let (account, password) = account();
    let forged =
        crate::mailbox::build(&account, crate::mailbox::Kind::Roster, "mailmesh roster", "x".into(), roster.encode());
    crate::sync::lock(&mailbox.0).append("INBOX", forged.unwrap().formatted());

    let laptop = node(&mailbox, 1);
    let view = laptop.service.setup(account.clone(), password.clone(), Some("laptop".into()), false).await.unwrap();
    assert_eq!(view.state, "awaiting_approval", "without a choice, setup asks to join what it found");
    assert_eq!(view.networks_found.len(), 1);
    assert_eq!(view.networks_found[0].members[0].device_name, "definitely yours");
    assert_eq!(view.networks_found[0].members[0].fingerprint, stranger.node_id().fingerprint());

    // Not the owner's: a new network instead, confirmed by mail as a first device is.
    let view = laptop.service.start_new_network().await.unwrap();
    assert_eq!(view.state, "awaiting_confirmation");
    assert!(view.networks_found.is_empty());
    let view = laptop.service.confirm_code(&mailbox.code_in("Confirm mailmesh on laptop")).await.unwrap();
    assert_eq!(view.state, "enrolled");
    assert_ne!(view.network_id, Some(roster.network_id()));

    // And from the start: `init --new-network` never asks to join.
    let desktop = node(&mailbox, 2);
    let view = desktop.service.setup(account, password, Some("desktop".into()), true).await.unwrap();
    assert_eq!(view.state, "awaiting_confirmation");
}

#[tokio::test]
async fn the_password_given_on_one_device_reaches_the_others_newest_first() {
    let mailbox = SharedMailbox::default();
    let (mut laptop, phone) = laptop_and_phone(&mailbox, 0).await;
    let mut tablet = join_through(&mailbox, &mut laptop, 3, "tablet").await;

    laptop.service.request_removal(&phone.service.secrets.node_id().to_string()).await.unwrap();
    laptop.service.confirm_code(&mailbox.code_in("Remove phone from mailmesh?")).await.unwrap();
    tablet.read_mail(&mailbox).await;
    let advised = |node: &Node| node.service.state.try_lock().map(|s| s.config.change_password).unwrap_or(false);
    assert!(advised(&tablet), "every remaining device asks for a new password");
    assert_eq!(laptop.service.password_update().await, None, "nothing to hand on before the owner gives one");

    laptop.service.change_password(Secret::new("changed once".into())).await.unwrap();
    let first = laptop.service.password_update().await.expect("the new password to hand on");
    std::thread::sleep(std::time::Duration::from_millis(2));
    laptop.service.change_password(Secret::new("changed twice".into())).await.unwrap();
    let second = laptop.service.password_update().await.unwrap();
    // Over the member link, in either order: the newest stays.
    tablet.service.on_password_update(&second).await.unwrap();
    tablet.service.on_password_update(&first).await.unwrap();
    assert_eq!(tablet.service.account().await.map(|(_, p)| p.expose().to_string()), Some("changed twice".into()));
    assert!(!advised(&tablet));
}

impl SharedMailbox {
    /// The kinds of the mailmesh mails in `folder`, and whether each is an
    /// inbox copy.
    fn kinds_in(&self, folder: &str) -> Vec<(crate::mailbox::Kind, bool)> {
        let mailbox = crate::sync::lock(&self.0);
        mailbox
            .raw(folder)
            .into_iter()
            .filter_map(|raw| {
                let (kind, _) = crate::mailbox::parse(raw)?;
                let copy =
                    mail_parser::MessageParser::default().parse(raw)?.header_raw(crate::mailbox::COPY_HEADER).is_some();
                Some((kind, copy))
            })
            .collect()
    }
}

#[tokio::test]
async fn mails_for_the_owners_devices_go_to_mailmeshs_folder_and_the_inbox_keeps_only_what_the_owner_reads() {
    use crate::mailbox::Kind;
    let mailbox = SharedMailbox::default();
    let (laptop, _phone) = laptop_and_phone(&mailbox, 0).await;
    laptop.service.announce_roster().await;
    let inbox = mailbox.kinds_in(INBOX);
    assert_eq!(
        inbox,
        [(Kind::Approval, false)],
        "the inbox holds the approval code for the owner, nothing else of mailmesh's"
    );
    assert!(mailbox.code_in("Confirm mailmesh on laptop").len() == 9, "the confirmation mail is in the inbox");
    let filed: Vec<Kind> = mailbox.kinds_in(FOLDER).into_iter().map(|(kind, _)| kind).collect();
    for kind in [Kind::JoinRequest, Kind::JoinProof, Kind::Welcome, Kind::Roster] {
        assert!(filed.contains(&kind), "{kind:?} is in the folder: {filed:?}");
    }
}

#[tokio::test]
async fn a_device_with_an_older_mailmesh_is_still_read_and_gets_inbox_copies_for_a_while() {
    use crate::mailbox::Kind;
    let mailbox = SharedMailbox::default();
    let (mut laptop, mut phone) = laptop_and_phone(&mailbox, 0).await;
    // The laptop, as an older mailmesh would, mails its roster to the inbox.
    let roster = laptop.service.state.try_lock().unwrap().enrollment.network().unwrap().roster.encode();
    let older = crate::mailbox::build(&account().0, Kind::Roster, "mailmesh roster", "roster".into(), roster).unwrap();
    crate::sync::lock(&mailbox.0).append(INBOX, older.formatted());
    phone.read_mail(&mailbox).await;
    assert_ne!(phone.service.lock().await.config.older_version_heard_ms, 0, "the phone heard an older device");
    laptop.read_mail(&mailbox).await;
    laptop.service.lock().await.config.older_version_heard_ms = 0;

    // The phone's mails now reach the inbox too, as marked copies.
    phone.service.announce_roster().await;
    assert_eq!(mailbox.kinds_in(INBOX).last(), Some(&(Kind::Roster, true)));
    assert_eq!(mailbox.kinds_in(FOLDER).last(), Some(&(Kind::Roster, false)));
    // A copy is not taken for an older device.
    laptop.read_mail(&mailbox).await;
    assert_eq!(laptop.service.lock().await.config.older_version_heard_ms, 0);

    // Thirty days on without a word from an older device: the folder only.
    phone.service.lock().await.config.older_version_heard_ms -= super::filing::OLDER_VERSION_GRACE_MS;
    let in_inbox = mailbox.kinds_in(INBOX).len();
    phone.service.announce_roster().await;
    assert_eq!(mailbox.kinds_in(INBOX).len(), in_inbox, "no copy any more");
}
