//! Two people over an in-memory mesh — Alice with two nodes, Bob with one —
//! and an impostor node claiming Bob's address: delivery, receipts,
//! replication between one owner's nodes, and who gets nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mailmesh_core::chat::{direct_conversation, ChatMessage, Group, MessageId};
use mailmesh_core::identity::{NodeId, NodeSecrets};
use mailmesh_core::peer::frame::Frame;
use tokio::sync::{broadcast, watch};

use super::ChatNet;
use crate::chat::History;
use crate::engine::people::PeopleHandle;
use crate::engine::standing::Standing;
use crate::engine::testkit::{self, Party};
use crate::mesh::links::memory::MemoryMesh;
use crate::mesh::links::Links;

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

struct Node {
    secrets: NodeSecrets,
    chat: Arc<ChatNet>,
    people: PeopleHandle,
    /// Chat frames this node received.
    received: Arc<AtomicUsize>,
    _home: tempfile::TempDir,
}

impl Node {
    fn id(&self) -> NodeId {
        self.secrets.node_id()
    }
}

fn node(mesh: &MemoryMesh, seed: u8, owner: &str) -> Node {
    let secrets = NodeSecrets::from_seeds([seed; 32], [seed; 32]);
    let home = tempfile::tempdir().expect("temp dir");
    let history = History::load(home.path().join("chat.bin"), mailmesh_core::chat::history_key(&secrets));
    let people = PeopleHandle::start(home.path().join("people.bin"));
    let (_, standing) =
        watch::channel(Standing { address: Some(owner.into()), network: None, mesh: Default::default() });
    let chat = ChatNet::new(history, mesh.links(secrets.node_id()), people.clone(), standing, broadcast::channel(16).0);
    let received = Arc::new(AtomicUsize::new(0));
    let (receiver, count) = (Arc::downgrade(&chat), received.clone());
    mesh.join(secrets.node_id(), owner, move |from, member, frame| {
        let (receiver, count) = (receiver.clone(), count.clone());
        Box::pin(async move {
            if let (Some(chat), Frame::Data { topic, payload }) = (receiver.upgrade(), frame) {
                count.fetch_add(1, Ordering::Relaxed);
                chat.on_frame(from, member, &topic, &payload).await;
            }
        })
    });
    Node { secrets, chat, people, received, _home: home }
}

fn party<'a>(node: &'a Node, address: &'a str) -> Party<'a> {
    Party { people: &node.people, secrets: &node.secrets, address }
}

/// `who` (of `who_address`) verifies `whom`'s node for `address`.
async fn verify(who: &Node, whom: &Node, address: &str, who_address: &str) {
    testkit::verify(&party(who, who_address), &party(whom, address)).await;
}

/// `who` saw `whom`'s link come up claiming `address` (unverified).
async fn saw(who: &Node, whom: &Node, address: &str) {
    testkit::saw(&party(who, ""), &party(whom, address)).await;
}

/// Runs every node's delivery until the mesh is quiet.
async fn deliver_all(mesh: &MemoryMesh, nodes: &[&Node]) {
    for _ in 0..3 {
        for node in nodes {
            node.chat.deliver().await;
        }
        mesh.settled().await;
    }
}

#[tokio::test]
async fn a_message_reaches_a_verified_person_and_both_receipts_come_back() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    verify(&bob, &alice, ALICE, BOB).await;

    let sent = alice.chat.send(BOB, "lunch at noon?").await.unwrap();
    assert_eq!(sent.pending, vec![BOB.to_string()]);
    deliver_all(&mesh, &[&alice, &bob]).await;

    let inbox = bob.chat.list().unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!((inbox[0].unread, inbox[0].last_text.as_str()), (1, "lunch at noon?"));
    let theirs = bob.chat.show(ALICE).unwrap().messages;
    assert!(theirs[0].verified, "from a verified node");
    let mine = alice.chat.show(BOB).unwrap().messages;
    assert_eq!((mine[0].pending.len(), mine[0].delivered.clone()), (0, vec![BOB.to_string()]));

    bob.chat.read(ALICE).await.unwrap();
    deliver_all(&mesh, &[&alice, &bob]).await;
    assert_eq!(bob.chat.unread(), 0);
    assert_eq!(alice.chat.show(BOB).unwrap().messages[0].read, vec![BOB.to_string()]);
}

#[tokio::test]
async fn a_message_waits_while_the_person_is_away_and_goes_when_they_link_up() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    verify(&bob, &alice, ALICE, BOB).await;
    mesh.set_online(bob.id(), false, 0);

    alice.chat.send(BOB, "are you there?").await.unwrap();
    deliver_all(&mesh, &[&alice, &bob]).await;
    assert_eq!(bob.received.load(Ordering::Relaxed), 0);
    assert_eq!(alice.chat.show(BOB).unwrap().messages[0].pending, vec![BOB.to_string()]);

    mesh.set_online(bob.id(), true, 0);
    deliver_all(&mesh, &[&alice, &bob]).await;
    assert_eq!(bob.chat.show(ALICE).unwrap().messages[0].text, "are you there?");
}

#[tokio::test(start_paused = true)]
async fn a_message_without_a_receipt_goes_again_after_a_while_not_at_every_wake() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    // Bob has only seen Alice's node: her message waits in his requests
    // and no receipt comes back, so it stays pending on her side.
    saw(&bob, &alice, ALICE).await;
    alice.chat.send(BOB, "one").await.unwrap();
    // Every change wakes delivery (a message sent, a receipt, a link): a
    // frame already on its way must not go again each time, or one
    // person's chat multiplies on a slow link.
    for _ in 0..4 {
        alice.chat.deliver().await;
        mesh.settled().await;
    }
    assert_eq!(bob.received.load(Ordering::Relaxed), 1, "sent once");
    assert_eq!(alice.chat.show(BOB).unwrap().messages[0].pending, vec![BOB.to_string()]);

    tokio::time::advance(super::RETRY_EVERY).await;
    alice.chat.deliver().await;
    mesh.settled().await;
    assert_eq!(bob.received.load(Ordering::Relaxed), 2, "tried again once its time came");

    // A node that links up again gets what is pending at once.
    alice.chat.node_up(bob.id());
    alice.chat.deliver().await;
    mesh.settled().await;
    assert_eq!(bob.received.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn only_verified_nodes_get_messages_and_an_impostors_frames_change_nothing() {
    let mesh = MemoryMesh::default();
    let alice = node(&mesh, 1, ALICE);
    let impostor = node(&mesh, 3, "mallory@example.org");
    mesh.claim(impostor.id(), BOB);
    // Alice has seen a node claim Bob's address, but verified none.
    saw(&alice, &impostor, BOB).await;
    let refused = alice.chat.send(BOB, "hi").await.unwrap_err();
    assert!(refused.to_string().contains("no verified device"), "{refused}");

    // Bob's real node is verified; the impostor still claims his address.
    let bob = node(&mesh, 2, BOB);
    verify(&alice, &bob, BOB, ALICE).await;
    verify(&bob, &alice, ALICE, BOB).await;
    alice.chat.send(BOB, "for Bob only").await.unwrap();
    deliver_all(&mesh, &[&alice, &bob, &impostor]).await;
    assert_eq!(bob.chat.show(ALICE).unwrap().messages[0].text, "for Bob only");
    assert_eq!(impostor.received.load(Ordering::Relaxed), 0, "the impostor got nothing");

    // A read receipt the impostor forges for Bob changes nothing.
    let forged = mailmesh_core::chat::Receipt {
        kind: mailmesh_core::chat::ReceiptKind::Read,
        reader: BOB.into(),
        at_ms: 5,
        messages: alice.chat.show(BOB).unwrap().messages.iter().map(|m| m.id.parse().unwrap()).collect(),
    };
    let before = alice.chat.show(BOB).unwrap().messages[0].read.clone();
    let forged = Frame::Data { topic: super::RECEIPT_TOPIC.into(), payload: forged.encode() };
    mesh.links(impostor.id()).send_to_person(&alice.id(), forged).await.unwrap();
    mesh.settled().await;
    assert_eq!(alice.chat.show(BOB).unwrap().messages[0].read, before);
}

#[tokio::test]
async fn one_owners_nodes_share_the_history_and_either_delivers_what_the_other_wrote() {
    let mesh = MemoryMesh::default();
    let (laptop, phone, bob) = (node(&mesh, 1, ALICE), node(&mesh, 4, ALICE), node(&mesh, 2, BOB));
    for alice in [&laptop, &phone] {
        verify(alice, &bob, BOB, ALICE).await;
        verify(&bob, alice, ALICE, BOB).await;
    }
    mesh.set_online(bob.id(), false, 0);
    laptop.chat.send(BOB, "from the laptop").await.unwrap();
    mesh.settled().await;
    assert_eq!(phone.chat.show(BOB).unwrap().messages[0].text, "from the laptop", "replicated");

    // The laptop goes away before Bob comes back: the phone delivers.
    mesh.set_online(laptop.id(), false, 0);
    mesh.set_online(bob.id(), true, 0);
    deliver_all(&mesh, &[&phone, &bob]).await;
    assert_eq!(bob.chat.show(ALICE).unwrap().messages[0].text, "from the laptop");
    assert_eq!(phone.chat.show(BOB).unwrap().messages[0].delivered, vec![BOB.to_string()]);
}

#[tokio::test]
async fn a_stranger_cannot_turn_a_direct_conversation_into_its_group() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    let mallory = node(&mesh, 3, "mallory@example.org");
    verify(&alice, &bob, BOB, ALICE).await;
    saw(&alice, &mallory, "mallory@example.org").await;
    alice.chat.send(BOB, "just us").await.unwrap();

    // Mallory writes a group message into Alice's conversation with Bob.
    let group = Group::new("mine now", [ALICE, BOB, "mallory@example.org"]).unwrap();
    let takeover = ChatMessage::text(
        MessageId([7; 16]),
        direct_conversation(ALICE, BOB),
        "mallory@example.org",
        10,
        "this is my group now",
        Some(group),
    )
    .unwrap();
    let frame = Frame::Data { topic: super::MESSAGE_TOPIC.into(), payload: takeover.encode() };
    mesh.links(mallory.id()).send_to_person(&alice.id(), frame).await.unwrap();
    mesh.settled().await;

    let conversation = alice.chat.show(BOB).unwrap();
    assert_eq!(conversation.summary.kind, "direct");
    assert_eq!(conversation.messages.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), vec!["just us"]);
}

/// Sends `message` from `from`'s node straight to `to`'s, as any node with a
/// link can.
async fn send_raw(mesh: &MemoryMesh, from: &Node, to: &Node, message: &ChatMessage) {
    let frame = Frame::Data { topic: super::MESSAGE_TOPIC.into(), payload: message.encode() };
    mesh.links(from.id()).send_to_person(&to.id(), frame).await.unwrap();
    mesh.settled().await;
}

fn message(seed: u8, from: &str, to: &str, sent_at_ms: u64, text: &str) -> ChatMessage {
    ChatMessage::text(MessageId([seed; 16]), direct_conversation(from, to), from, sent_at_ms, text, None).unwrap()
}

const MALLORY: &str = "mallory@example.org";

#[tokio::test]
async fn a_strangers_messages_wait_in_a_bounded_request_box_not_the_history() {
    let mesh = MemoryMesh::default();
    let (alice, mallory) = (node(&mesh, 1, ALICE), node(&mesh, 3, MALLORY));
    saw(&alice, &mallory, MALLORY).await;
    let heads = alice.chat.heads();
    for n in 0..40u8 {
        send_raw(&mesh, &mallory, &alice, &message(n, MALLORY, ALICE, 1_000 + u64::from(n), &format!("buy {n}"))).await;
    }
    assert_eq!(alice.chat.heads(), heads, "nothing of a stranger's is written to the history");
    assert_eq!(alice.chat.unread(), 0, "nor counted as unread");
    let list = alice.chat.list().unwrap();
    assert!(list.iter().all(|c| c.kind != "direct"), "no conversation with an unverified node");
    let request = list.iter().find(|c| c.kind == "request").expect("a request row");
    assert_eq!(request.members, vec![MALLORY.to_string()]);
    let shown = alice.chat.show(&request.id).unwrap().messages;
    assert_eq!(shown.len(), super::requests::MAX_PER_SENDER, "the newest few are kept");
    assert_eq!(shown.last().unwrap().text, "buy 39");
    assert!(shown.iter().all(|m| !m.verified));
    let answer = alice.chat.send(&request.id, "who are you?").await.unwrap_err();
    assert!(answer.to_string().contains("verify"), "{answer}");

    // Verified, their waiting messages join the history.
    verify(&alice, &mallory, MALLORY, ALICE).await;
    alice.chat.deliver().await;
    let conversation = alice.chat.show(MALLORY).unwrap();
    assert_eq!(conversation.messages.len(), super::requests::MAX_PER_SENDER);
    assert!(alice.chat.list().unwrap().iter().all(|c| c.kind != "request"), "the request is gone");
}

#[tokio::test]
async fn many_strangers_fill_the_request_box_only_to_its_bound() {
    let mesh = MemoryMesh::default();
    let alice = node(&mesh, 1, ALICE);
    let strangers: Vec<Node> = (0..10).map(|n| node(&mesh, 50 + n, &format!("s{n}@example.net"))).collect();
    for (n, stranger) in strangers.iter().enumerate() {
        let address = format!("s{n}@example.net");
        saw(&alice, stranger, &address).await;
        for m in 0..20u8 {
            let id = (n as u8) * 20 + m;
            send_raw(&mesh, stranger, &alice, &message(id, &address, ALICE, 1_000, "hello")).await;
        }
    }
    let held: usize = alice
        .chat
        .list()
        .unwrap()
        .iter()
        .filter(|c| c.kind == "request")
        .map(|c| alice.chat.show(&c.id).unwrap().messages.len())
        .sum();
    assert_eq!(held, super::requests::MAX_REQUESTS, "full to its bound, and no further");
}

#[tokio::test]
async fn a_message_that_arrives_again_writes_nothing_and_is_acknowledged_again() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    verify(&bob, &alice, ALICE, BOB).await;
    let first = message(9, ALICE, BOB, 1_000, "once");
    send_raw(&mesh, &alice, &bob, &first).await;
    deliver_all(&mesh, &[&alice, &bob]).await;
    let heads = bob.chat.heads();
    let before = alice.received.load(Ordering::Relaxed);
    for _ in 0..50 {
        send_raw(&mesh, &alice, &bob, &first).await;
    }
    assert_eq!(bob.chat.heads(), heads, "fifty copies changed nothing in the history");
    assert_eq!(bob.chat.show(ALICE).unwrap().messages.len(), 1);
    assert!(alice.received.load(Ordering::Relaxed) > before, "the sender hears it arrived");
}

#[tokio::test]
async fn a_message_dated_far_in_the_future_is_refused() {
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    verify(&bob, &alice, ALICE, BOB).await;
    send_raw(&mesh, &bob, &alice, &message(1, BOB, ALICE, u64::MAX, "forever last")).await;
    assert!(alice.chat.list().unwrap().is_empty(), "not stored");
    let soon = crate::clock::now_ms() + 60_000;
    send_raw(&mesh, &bob, &alice, &message(2, BOB, ALICE, soon, "a clock a minute ahead")).await;
    assert_eq!(alice.chat.show(BOB).unwrap().messages[0].text, "a clock a minute ahead");
}

#[tokio::test]
async fn a_long_conversation_shows_its_newest_page_and_how_many_came_before() {
    // A conversation of years is read a page at a time: the page is what
    // each new message costs to show.
    let mesh = MemoryMesh::default();
    let (alice, bob) = (node(&mesh, 1, ALICE), node(&mesh, 2, BOB));
    verify(&alice, &bob, BOB, ALICE).await;
    for i in 0..250 {
        alice.chat.send(BOB, &format!("message {i}")).await.unwrap();
    }
    let page = alice.chat.show_page(BOB, None).unwrap();
    assert_eq!(page.messages.len(), super::PAGE);
    assert_eq!(page.messages.first().unwrap().text, format!("message {}", 250 - super::PAGE));
    assert_eq!(page.messages.last().unwrap().text, "message 249", "oldest first, ending with the newest");
    assert_eq!(page.earlier, 250 - super::PAGE as u32);

    let whole = alice.chat.show_page(BOB, Some(300)).unwrap();
    assert_eq!((whole.messages.len(), whole.earlier), (250, 0));
    assert_eq!(whole.messages[0].text, "message 0");
    let few = alice.chat.show_page(BOB, Some(0)).unwrap();
    assert_eq!((few.messages.len(), few.earlier), (1, 249), "a page holds at least one message");
}
