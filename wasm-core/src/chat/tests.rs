//! Round trips, tampering and the acceptance rules of chat messages.

use proptest::prelude::*;

use super::*;

fn email() -> impl Strategy<Value = String> {
    "[a-z]{1,8}@[a-z]{1,6}\\.org"
}

fn group() -> impl Strategy<Value = Option<Group>> {
    proptest::option::of(
        ("[ -~]{0,20}", proptest::collection::vec(email(), 0..6))
            .prop_map(|(title, members)| Group::new(&title, &members).unwrap()),
    )
}

fn message() -> impl Strategy<Value = ChatMessage> {
    (any::<[u8; 16]>(), any::<[u8; 16]>(), email(), any::<u64>(), any::<bool>(), "\\PC{1,80}", group()).prop_map(
        |(id, conversation, author, sent_at_ms, members, text, group)| ChatMessage {
            id: MessageId(id),
            conversation: ConversationId(conversation),
            author,
            sent_at_ms,
            kind: if members { MessageKind::Members } else { MessageKind::Text },
            text,
            group,
        },
    )
}

proptest! {
    #[test]
    fn messages_round_trip(message in message()) {
        prop_assert_eq!(ChatMessage::decode(&message.encode()), Ok(message));
    }

    #[test]
    fn receipts_round_trip(read in any::<bool>(), reader in email(), at_ms in any::<u64>(),
                           ids in proptest::collection::vec(any::<[u8; 16]>(), 0..20)) {
        let receipt = Receipt {
            kind: if read { ReceiptKind::Read } else { ReceiptKind::Delivered },
            reader,
            at_ms,
            messages: ids.into_iter().map(MessageId).collect(),
        };
        prop_assert_eq!(Receipt::decode(&receipt.encode()), Ok(receipt));
    }

    #[test]
    fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ChatMessage::decode(&bytes);
        let _ = Receipt::decode(&bytes);
        let _ = open_history(&[7; 32], &bytes);
    }

    #[test]
    fn a_cut_message_is_refused(message in message(), cut in 1usize..40) {
        let bytes = message.encode();
        let cut = cut.min(bytes.len());
        prop_assert!(ChatMessage::decode(&bytes[..bytes.len() - cut]).is_err());
    }

    #[test]
    fn history_round_trips_and_detects_tampering(history in proptest::collection::vec(any::<u8>(), 0..500),
                                                 nonce in any::<[u8; 24]>(), flip in any::<usize>()) {
        let key = [3u8; 32];
        let sealed = seal_history(&key, nonce, &history);
        prop_assert_eq!(open_history(&key, &sealed), Ok(history));
        let mut bad = sealed.clone();
        let at = flip % bad.len();
        bad[at] ^= 1;
        prop_assert!(open_history(&key, &bad).is_err());
        prop_assert_eq!(open_history(&[4u8; 32], &sealed), Err(ChatError::History));
    }
}

#[test]
fn direct_conversations_are_named_alike_from_both_sides() {
    assert_eq!(direct_conversation("Alice@x.org", "bob@y.org"), direct_conversation("bob@y.org ", "alice@x.org"));
    assert_ne!(direct_conversation("alice@x.org", "bob@y.org"), direct_conversation("alice@x.org", "carol@y.org"));
}

#[test]
fn ids_read_back_from_their_text() {
    let id = MessageId([0xab; 16]);
    assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
    assert!("nope".parse::<ConversationId>().is_err());
}

fn direct(author: &str, to: &str) -> ChatMessage {
    ChatMessage::text(MessageId([1; 16]), direct_conversation(author, to), author, 5, "hi", None).unwrap()
}

#[test]
fn only_the_address_the_link_proved_may_author() {
    let message = direct("bob@y.org", "alice@x.org");
    assert_eq!(check_incoming(&message, "bob@y.org", "alice@x.org", Known::New), Ok(()));
    assert!(matches!(
        check_incoming(&message, "mallory@z.org", "alice@x.org", Known::New),
        Err(ChatError::WrongAuthor { .. })
    ));
}

#[test]
fn a_direct_message_for_someone_else_is_refused() {
    let message = direct("bob@y.org", "carol@x.org");
    assert_eq!(
        check_incoming(&message, "bob@y.org", "alice@x.org", Known::New),
        Err(ChatError::NotForUs("alice@x.org".into()))
    );
}

#[test]
fn only_members_write_to_a_known_group() {
    let group = Group::new("trip", ["alice@x.org", "bob@y.org", "carol@z.org"]).unwrap();
    let mut message = direct("bob@y.org", "alice@x.org");
    message.conversation = ConversationId([9; 16]);
    message.group = Some(group.clone());
    let known = group.members.clone();
    assert_eq!(check_incoming(&message, "bob@y.org", "alice@x.org", Known::Group(&known)), Ok(()));
    // Bob was removed on Alice's side: his word no longer counts there.
    let without_bob: Vec<String> = known.iter().filter(|m| *m != "bob@y.org").cloned().collect();
    assert_eq!(
        check_incoming(&message, "bob@y.org", "alice@x.org", Known::Group(&without_bob)),
        Err(ChatError::NotAMember("bob@y.org".into()))
    );
}

#[test]
fn a_removed_member_hears_of_the_removal_only() {
    let before = Group::new("trip", ["alice@x.org", "bob@y.org", "carol@z.org"]).unwrap();
    let after = Group::new("trip", ["alice@x.org", "bob@y.org"]).unwrap();
    let mut message = direct("alice@x.org", "carol@z.org");
    message.conversation = ConversationId([9; 16]);
    message.group = Some(after);
    message.kind = MessageKind::Members;
    assert_eq!(check_incoming(&message, "alice@x.org", "carol@z.org", Known::Group(&before.members)), Ok(()));
    message.kind = MessageKind::Text;
    assert!(check_incoming(&message, "alice@x.org", "carol@z.org", Known::Group(&before.members)).is_err());
}

#[test]
fn groups_are_canonical_on_the_wire() {
    let mut message = direct("alice@x.org", "bob@y.org");
    message.group = Some(Group { title: "t".into(), members: vec!["b@x.org".into(), "a@x.org".into()] });
    assert_eq!(ChatMessage::decode(&message.encode()), Err(ChatError::BadText("group")));
}

#[test]
fn empty_and_overlong_texts_are_refused() {
    let conversation = ConversationId([0; 16]);
    assert_eq!(ChatMessage::text(MessageId([0; 16]), conversation, "a@x.org", 0, "  ", None), Err(ChatError::Empty));
    let long = "x".repeat(MAX_TEXT + 1);
    assert!(ChatMessage::text(MessageId([0; 16]), conversation, "a@x.org", 0, &long, None).is_err());
}

#[test]
fn recipients_leave_out_the_author() {
    let mut message = direct("alice@x.org", "bob@y.org");
    assert_eq!(message.recipients(Some("Bob@y.org")), vec!["bob@y.org".to_string()]);
    message.group = Some(Group::new("", ["alice@x.org", "bob@y.org", "carol@z.org"]).unwrap());
    assert_eq!(message.recipients(None), vec!["bob@y.org".to_string(), "carol@z.org".to_string()]);
}

#[test]
fn a_direct_conversation_never_becomes_a_group() {
    let group = Group::new("mine now", ["alice@x.org", "mallory@z.org", "bob@y.org"]).unwrap();
    // Mallory writes a group message into Alice's conversation with Bob.
    let mut message = direct("mallory@z.org", "alice@x.org");
    message.conversation = direct_conversation("alice@x.org", "bob@y.org");
    message.group = Some(group.clone());
    assert_eq!(check_incoming(&message, "mallory@z.org", "alice@x.org", Known::Direct), Err(ChatError::NotAGroup));
    // Nor does a group take the id of the direct conversation it would
    // shadow before that conversation exists here.
    message.conversation = direct_conversation("alice@x.org", "mallory@z.org");
    assert_eq!(check_incoming(&message, "mallory@z.org", "alice@x.org", Known::New), Err(ChatError::NotAGroup));
}
