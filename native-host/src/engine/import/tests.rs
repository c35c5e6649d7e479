//! The import over in-memory mailboxes: one node alone, then three nodes
//! of one owner over an in-memory mesh sharing one import, the daily
//! budget, a throttling server, and progress across a restart.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use mailmesh_core::drive::NetworkKey;
use mailmesh_core::identity::{NodeId, NodeSecrets};
use mailmesh_core::import::Budget;
use mailmesh_core::peer::frame::Frame;
use tokio::sync::{broadcast, watch};

use super::{ImportError, MailImport, Plan, Settings};
use crate::drive::Drive;
use crate::engine::drive_net::DriveNet;
use crate::engine::standing::{Membership, Standing};
use crate::engine::testkit;
use crate::home::NodeHome;
use crate::mailbox::memory::MemoryMailbox;
use crate::mesh::links::memory::MemoryMesh;

const DAY_MS: u64 = 24 * 3600 * 1000;
/// Noon of some day, where every test's clock starts.
const NOON: u64 = 20_000 * DAY_MS + DAY_MS / 2;

fn settings(grace_ms: u64) -> Settings {
    Settings { grace_ms, slice: std::time::Duration::from_secs(3600), parallel: 2, backoff_ms: 60_000 }
}

/// A clock the test moves.
fn clock() -> (Arc<AtomicU64>, super::Clock) {
    let now = Arc::new(AtomicU64::new(NOON));
    let read = now.clone();
    (now, Arc::new(move || read.load(Ordering::SeqCst)))
}

fn service(home: &std::path::Path, network: bool) -> (Arc<MailImport>, Arc<DriveNet>) {
    let secrets = NodeSecrets::from_seeds([1; 32], [1; 32]);
    let members = vec![secrets.node_id()];
    let network = network.then(|| Membership { key: NetworkKey::from_bytes([7; 32]), members });
    let (_, standing) =
        watch::channel(Standing { address: Some("owner@example.org".into()), network, mesh: Default::default() });
    let events = broadcast::channel(16).0;
    let net = testkit::lone_drive(home, &secrets, standing, events.clone());
    let links = MemoryMesh::default().links(secrets.node_id());
    let import = MailImport::new(secrets.node_id(), net.clone(), links, events, settings(0), clock().1);
    (import, net)
}

fn plan(folders: &[String]) -> Plan {
    Plan { folders: folders.to_vec(), budget: None, since: None, policy: Default::default() }
}

/// One whole pass: messages read, files added.
async fn run(
    import: &MailImport,
    mailbox: &mut MemoryMailbox,
    folders: &[String],
) -> Result<(usize, usize), ImportError> {
    import.pass(mailbox, &plan(folders), None).await.map(|pass| (pass.messages, pass.files))
}

/// A mail with one attachment per `(name, content)`.
fn mail(subject: &str, attachments: &[(&str, &str)]) -> Vec<u8> {
    let mut raw = format!(
        "From: friend@example.org\r\nTo: owner@example.org\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    );
    for (name, content) in attachments {
        raw += &format!(
            "--b\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{content}\r\n"
        );
    }
    raw += "--b--\r\n";
    raw.into_bytes()
}

fn names(net: &DriveNet) -> Vec<String> {
    let mut names: Vec<String> = net.drive().list().unwrap().into_iter().map(|f| f.name).collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_message_is_read_once_and_a_restart_reads_only_what_is_new() {
    let home = tempfile::tempdir().unwrap();
    let (import, net) = service(home.path(), true);
    let mut mailbox = MemoryMailbox::default();
    let folders = vec!["INBOX".to_string()];
    mailbox.append("INBOX", mail("q3", &[("q3.csv", "a,b,c"), ("logo.bin", "xyz")]));
    mailbox.append("INBOX", b"not a mail at all".to_vec());
    let account = crate::api::Account {
        email: "owner@example.org".into(),
        imap: crate::api::Server { host: "h".into(), port: 1, security: crate::api::Security::Plain },
        smtp: crate::api::Server { host: "h".into(), port: 1, security: crate::api::Security::Plain },
        user: "owner".into(),
        tls_ca: None,
        accept_invalid_certs: false,
        oauth: None,
    };
    let ours = crate::mailbox::build(&account, crate::mailbox::Kind::Roster, "roster", "x".into(), vec![1]);
    mailbox.append("INBOX", ours.unwrap().formatted());

    assert_eq!(run(&import, &mut mailbox, &folders).await.unwrap(), (2, 2), "mailmesh's own mail is not read");
    assert_eq!(names(&net), vec!["logo.bin", "q3.csv"]);
    assert_eq!(mailbox.fetched, 2);

    // A later pass (or a restart, with a new service on the same home)
    // reads only what came since.
    drop(import);
    let me = net.members()[0];
    let links = MemoryMesh::default().links(me);
    let import = MailImport::new(me, net.clone(), links, broadcast::channel(16).0, settings(0), clock().1);
    mailbox.append("INBOX", mail("minutes", &[("minutes.txt", "agreed")]));
    assert_eq!(run(&import, &mut mailbox, &folders).await.unwrap(), (1, 1));
    assert_eq!(mailbox.fetched, 3);
    assert_eq!(names(&net), vec!["logo.bin", "minutes.txt", "q3.csv"]);

    // The server renumbers the folder: all read again, stored once.
    mailbox.renumber("INBOX");
    assert_eq!(run(&import, &mut mailbox, &folders).await.unwrap(), (3, 3));
    assert_eq!(names(&net).len(), 3);
}

#[tokio::test]
async fn outside_a_network_nothing_is_read() {
    let home = tempfile::tempdir().unwrap();
    let (import, _) = service(home.path(), false);
    let mut mailbox = MemoryMailbox::default();
    mailbox.append("INBOX", mail("q3", &[("q3.csv", "a,b,c")]));
    assert_eq!(run(&import, &mut mailbox, &["INBOX".to_string()]).await.unwrap(), (0, 0));
    assert_eq!(mailbox.fetched, 0);
}

#[tokio::test]
async fn a_mail_of_ten_thousand_parts_gives_a_bounded_number_of_files() {
    let home = tempfile::tempdir().unwrap();
    let (import, net) = service(home.path(), true);
    let mut mailbox = MemoryMailbox::default();
    let parts: Vec<(String, String)> = (0..10_000).map(|i| (format!("f{i}.bin"), format!("part {i}"))).collect();
    let parts: Vec<(&str, &str)> = parts.iter().map(|(n, c)| (n.as_str(), c.as_str())).collect();
    mailbox.append("INBOX", mail("bomb", &parts));
    mailbox.append("INBOX", mail("later", &[("later.txt", "still imported")]));
    run(&import, &mut mailbox, &["INBOX".to_string()]).await.unwrap();
    let names = names(&net);
    assert!(names.len() <= crate::drive::attachments::MAX_ATTACHMENTS + 1, "{} files", names.len());
    assert!(names.contains(&"later.txt".to_string()), "the next message is imported");
}

#[tokio::test]
async fn a_message_that_cannot_be_fetched_is_skipped_after_a_few_tries_and_the_rest_goes_on() {
    let home = tempfile::tempdir().unwrap();
    let (import, net) = service(home.path(), true);
    let mut mailbox = MemoryMailbox::default();
    let folders = vec!["INBOX".to_string()];
    let poison = mailbox.append("INBOX", mail("poison", &[("poison.bin", "x")]));
    mailbox.append("INBOX", mail("later", &[("later.txt", "y")]));
    mailbox.failing.push(poison);
    for _ in 0..super::MAX_FETCH_ATTEMPTS {
        let _ = run(&import, &mut mailbox, &folders).await;
    }
    assert_eq!(names(&net), vec!["later.txt"], "the message after it is imported");
    // Fixed on the server later or not, it is not tried again.
    mailbox.failing.clear();
    run(&import, &mut mailbox, &folders).await.unwrap();
    assert_eq!(names(&net), vec!["later.txt"]);
}

#[tokio::test]
async fn an_attached_messages_name_is_sanitized_like_any_attachment() {
    let home = tempfile::tempdir().unwrap();
    let (import, net) = service(home.path(), true);
    let mut mailbox = MemoryMailbox::default();
    let raw = "From: friend@example.org\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
               Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nfwd\r\n\
               --b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@example.org\r\n\
               Subject: ../../invoice\u{202E}fdp.exe\r\n\r\nhello\r\n--b--\r\n";
    mailbox.append("INBOX", raw.as_bytes().to_vec());
    run(&import, &mut mailbox, &["INBOX".to_string()]).await.unwrap();
    let names = names(&net);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(!names[0].contains('/') && !names[0].contains('\u{202E}'), "{:?}", names[0]);
}

/// `n` nodes of one owner over an in-memory mesh, ordered by node id (so
/// `nodes[0]` is the one that imports when all are online), each with its
/// own view of the same mailbox.
struct Owner {
    mesh: MemoryMesh,
    nodes: Vec<Node>,
    now: Arc<AtomicU64>,
}

struct Node {
    id: NodeId,
    net: Arc<DriveNet>,
    import: Arc<MailImport>,
    /// Where the mesh hands this node's import states.
    slot: Arc<std::sync::Mutex<Weak<MailImport>>>,
    mailbox: MemoryMailbox,
    home: tempfile::TempDir,
}

fn owner(n: u8, grace_ms: u64, mailbox: impl Fn() -> MemoryMailbox) -> Owner {
    let mesh = MemoryMesh::default();
    let mut ids: Vec<NodeId> = (1..=n).map(|i| NodeSecrets::from_seeds([i; 32], [i; 32]).node_id()).collect();
    ids.sort();
    let membership = Membership { key: NetworkKey::from_bytes([7; 32]), members: ids.clone() };
    let standing =
        Standing { address: Some("owner@example.org".into()), network: Some(membership), mesh: Default::default() };
    let (_, standing) = watch::channel(standing);
    let (now, clock) = clock();
    let nodes = ids
        .into_iter()
        .map(|id| {
            let home = tempfile::tempdir().expect("temp dir");
            let drive = Arc::new(Drive::open(&NodeHome::at(home.path())).expect("drive"));
            let events = broadcast::channel(64).0;
            let links = mesh.links(id);
            let net = DriveNet::new(id, drive, links.clone(), standing.clone(), events.clone(), testkit::settings(0));
            let import = MailImport::new(id, net.clone(), links, events, settings(grace_ms), clock.clone());
            let slot = Arc::new(std::sync::Mutex::new(Arc::downgrade(&import)));
            let (to_net, to_import) = (Arc::downgrade(&net), slot.clone());
            mesh.join(id, "owner@example.org", move |from, _member, frame| {
                let (to_net, to_import) = (to_net.clone(), crate::sync::lock(&to_import).clone());
                Box::pin(async move {
                    let Frame::Data { topic, payload } = frame else { return };
                    if topic == super::TOPIC {
                        if let Some(import) = to_import.upgrade() {
                            import.on_state(from, &payload).await;
                        }
                    } else if let Some(net) = to_net.upgrade() {
                        net.on_message(from, &topic, payload).await;
                    }
                })
            });
            Node { id, net, import, slot, mailbox: mailbox(), home }
        })
        .collect();
    Owner { mesh, nodes, now }
}

impl Owner {
    /// Restarts node `at`'s import: nothing in memory, its disk as it was.
    fn restart(&mut self, at: usize) {
        let node = &mut self.nodes[at];
        let now = self.now.clone();
        let clock: super::Clock = Arc::new(move || now.load(Ordering::SeqCst));
        let links = self.mesh.links(node.id);
        node.import = MailImport::new(node.id, node.net.clone(), links, broadcast::channel(16).0, settings(0), clock);
        *crate::sync::lock(&node.slot) = Arc::downgrade(&node.import);
    }

    /// A pass on node `at`, then every frame it caused handled.
    async fn pass(&mut self, at: usize, plan: &Plan) -> super::Pass {
        let node = &mut self.nodes[at];
        let pass = node.import.pass(&mut node.mailbox, plan, None).await.expect("a pass");
        self.mesh.settled().await;
        pass
    }

    /// Takes node `at` off the LAN or brings it back (its links coming up
    /// as the engine's would: each side hears of the other).
    async fn set_online(&self, at: usize, online: bool) {
        let id = self.nodes[at].id;
        self.mesh.set_online(id, online, 0);
        if online {
            for other in self.nodes.iter().filter(|n| n.id != id) {
                other.import.on_member_up(id).await;
                other.net.on_member_up(id).await;
                self.nodes[at].import.on_member_up(other.id).await;
                self.nodes[at].net.on_member_up(other.id).await;
            }
        }
        self.mesh.settled().await;
    }

    fn fetched_bytes(&self) -> usize {
        self.nodes.iter().map(|n| n.mailbox.fetched_bytes).sum()
    }

    fn append_everywhere(&mut self, raw: &[u8]) {
        for node in &mut self.nodes {
            node.mailbox.append("INBOX", raw.to_vec());
        }
    }
}

/// A mailbox of `count` mails, each with an attachment of its own.
fn mailbox_of(count: usize) -> impl Fn() -> MemoryMailbox {
    move || {
        let mut mailbox = MemoryMailbox::default();
        for i in 0..count {
            mailbox.append("INBOX", numbered(i));
        }
        mailbox
    }
}

fn numbered(i: usize) -> Vec<u8> {
    // Every one the same size, so a budget counts messages.
    let body = format!("report number {i:04} ").repeat(50);
    mail(&format!("report {i:04}"), &[(&format!("report-{i:04}.txt"), &body)])
}

fn inbox() -> Plan {
    plan(&["INBOX".to_string()])
}

#[tokio::test]
async fn three_nodes_share_one_import_and_whoever_imports_next_starts_where_the_last_stopped() {
    let mut owner = owner(3, 0, mailbox_of(30));
    let mailbox_bytes: usize = owner.nodes[0].mailbox.raw("INBOX").iter().map(|r| r.len()).sum();

    // All online: only the node with the smallest id reads the mailbox.
    for at in [2, 1, 0] {
        owner.pass(at, &inbox()).await;
    }
    assert_eq!(owner.nodes[0].mailbox.fetched, 30);
    assert_eq!(owner.nodes[1].mailbox.fetched + owner.nodes[2].mailbox.fetched, 0, "the others fetch nothing");
    for node in &owner.nodes {
        assert_eq!(names(&node.net).len(), 30, "every node knows every file");
        let view = node.import.view(None).unwrap();
        assert_eq!((view.messages_done, view.messages_total), (0, 0), "the run is over: {view:?}");
    }
    assert_eq!(owner.nodes[1].import.view(None).unwrap().state, "by_device");

    // The importer goes away; the next one starts where it stopped.
    owner.set_online(0, false).await;
    for i in 30..40 {
        owner.append_everywhere(&numbered(i));
    }
    owner.pass(2, &inbox()).await;
    owner.pass(1, &inbox()).await;
    assert_eq!(owner.nodes[1].mailbox.fetched, 10, "only what came since");
    assert_eq!(owner.nodes[2].mailbox.fetched, 0);

    // Back, the first node fetches nothing the others imported.
    owner.set_online(0, true).await;
    for at in [0, 1, 2] {
        owner.pass(at, &inbox()).await;
    }
    assert_eq!(owner.nodes[0].mailbox.fetched, 30);
    assert!(owner.fetched_bytes() * 10 < mailbox_bytes * 15, "{} of {}", owner.fetched_bytes(), mailbox_bytes);
    for node in &owner.nodes {
        assert_eq!(names(&node.net).len(), 40);
    }
}

#[tokio::test]
async fn a_node_that_imported_alone_hands_its_place_to_the_one_that_comes_up_and_neither_repeats() {
    let mut owner = owner(2, 0, mailbox_of(10));
    owner.set_online(0, false).await;
    owner.pass(1, &inbox()).await;
    assert_eq!(owner.nodes[1].mailbox.fetched, 10, "alone, it imports");

    // The first node comes up after a restart (no memory but its disk):
    // it hears how far the other got before it reads anything.
    owner.restart(0);
    owner.set_online(0, true).await;
    owner.append_everywhere(&numbered(10));
    owner.pass(0, &inbox()).await;
    owner.pass(1, &inbox()).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 1, "only the new message");
    assert_eq!(owner.nodes[1].mailbox.fetched, 10, "and the other stopped importing");
}

#[tokio::test]
async fn a_node_that_just_started_waits_for_its_fellow_members_before_importing_alone() {
    let mut owner = owner(2, 30_000, mailbox_of(3));
    owner.set_online(1, false).await;
    owner.pass(0, &inbox()).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 0);
    assert_eq!(owner.nodes[0].import.view(None).unwrap().state, "waiting_for_devices");
    owner.now.fetch_add(30_000, Ordering::SeqCst);
    owner.pass(0, &inbox()).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 3, "after the grace it imports alone");
}

#[tokio::test]
async fn the_daily_budget_is_shared_by_all_nodes_and_the_import_goes_on_the_next_day() {
    let mut owner = owner(2, 0, mailbox_of(20));
    let size = numbered(0).len() as u64;
    let budget = Plan { budget: Some(Budget { bytes_per_day: size * 8 }), ..inbox() };

    // The second node imports alone for a while and tells the first.
    owner.set_online(0, false).await;
    owner.pass(1, &Plan { budget: Some(Budget { bytes_per_day: size * 5 }), ..inbox() }).await;
    assert_eq!(owner.nodes[1].mailbox.fetched, 5);
    assert_eq!(owner.nodes[1].import.view(None).unwrap().state, "paused_budget");

    // The first counts what the second spent today: 3 more, not 8.
    owner.set_online(0, true).await;
    owner.pass(0, &budget).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 3);
    let view = owner.nodes[0].import.view(budget.budget).unwrap();
    assert_eq!(view.state, "paused_budget");
    assert_eq!(view.resumes_at_ms, Some(20_001 * DAY_MS), "tomorrow, UTC");
    assert_eq!(view.today_bytes, 8 * size);
    assert_eq!((view.messages_done, view.messages_total), (8, 20));

    // The next days, the rest, from the checkpoint.
    owner.now.store(20_001 * DAY_MS, Ordering::SeqCst);
    owner.pass(0, &budget).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 3 + 8);
    owner.now.store(20_002 * DAY_MS, Ordering::SeqCst);
    owner.pass(0, &budget).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 3 + 8 + 4);
    assert_eq!(owner.nodes[0].import.view(None).unwrap().state, "idle");
    assert_eq!(names(&owner.nodes[0].net).len(), 20, "each message fetched once in all");
}

#[tokio::test]
async fn a_throttling_server_pauses_the_import_longer_each_time_and_it_resumes_from_the_checkpoint() {
    let mut owner = owner(1, 0, mailbox_of(4));
    owner.nodes[0].mailbox.throttled = true;
    owner.pass(0, &inbox()).await;
    let view = owner.nodes[0].import.view(None).unwrap();
    assert_eq!(view.state, "paused_server");
    assert_eq!(view.resumes_at_ms, Some(NOON + 60_000), "a minute first");

    // Still paused: the server is not asked.
    owner.nodes[0].mailbox.throttled = false;
    owner.pass(0, &inbox()).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 0);

    // Refused again: twice as long.
    owner.now.store(NOON + 60_000, Ordering::SeqCst);
    owner.nodes[0].mailbox.throttled = true;
    owner.pass(0, &inbox()).await;
    assert_eq!(owner.nodes[0].import.view(None).unwrap().resumes_at_ms, Some(NOON + 180_000));

    owner.now.store(NOON + 180_000, Ordering::SeqCst);
    owner.nodes[0].mailbox.throttled = false;
    owner.pass(0, &inbox()).await;
    assert_eq!(owner.nodes[0].mailbox.fetched, 4);
    assert_eq!(owner.nodes[0].import.view(None).unwrap().state, "idle");
}

#[tokio::test]
async fn progress_counts_messages_and_bytes_and_survives_a_restart() {
    let mut owner = owner(1, 0, mailbox_of(10));
    let size = numbered(0).len() as u64;
    let budget = Plan { budget: Some(Budget { bytes_per_day: size * 4 }), ..inbox() };
    owner.pass(0, &budget).await;
    let view = owner.nodes[0].import.view(None).unwrap();
    assert_eq!((view.messages_done, view.messages_total), (4, 10));
    assert_eq!((view.bytes_done, view.bytes_total), (4 * size, 10 * size));

    // A restart: the run's count is on disk.
    owner.restart(0);
    let view = owner.nodes[0].import.view(None).unwrap();
    assert_eq!((view.messages_done, view.messages_total), (4, 10), "known before listing again");
    owner.now.store(20_001 * DAY_MS, Ordering::SeqCst);
    let node = &mut owner.nodes[0];
    node.import.pass(&mut node.mailbox, &plan(&["INBOX".into()]), None).await.unwrap();
    assert_eq!(node.mailbox.fetched, 10);
    assert_eq!(names(&node.net).len(), 10);
    assert!(node.home.path().exists());
}

#[tokio::test]
async fn mail_before_the_start_date_is_passed_over() {
    let home = tempfile::tempdir().unwrap();
    let (import, net) = service(home.path(), true);
    let mut mailbox = MemoryMailbox::default();
    for (year, name) in [(2019, "old.pdf"), (2025, "new.pdf")] {
        let mut raw = format!("Date: Tue, 1 Jan {year} 10:00:00 +0000\r\n").into_bytes();
        raw.extend(mail(name, &[(name, "pdf")]));
        mailbox.append("INBOX", raw);
    }
    let since = chrono::NaiveDate::from_ymd_opt(2024, 1, 1);
    let plan = Plan { since, ..plan(&["INBOX".to_string()]) };
    let pass = import.pass(&mut mailbox, &plan, None).await.unwrap();
    assert_eq!((pass.messages, mailbox.fetched), (1, 1), "the old one is not even fetched");
    assert_eq!(names(&net), vec!["new.pdf"]);
}
