//! Who another person's node is, by the contact book: the checks chat,
//! calls and direct send make before they take or send anything. Pure
//! functions of a book snapshot (and, for `linked_people`, the links up).

use std::collections::BTreeMap;

use mailmesh_core::identity::NodeId;
use mailmesh_core::people::{normalize_email, Contacts, Trust};

/// Why something may not go to or come from a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{0} has no verified device yet: verify them under People first")]
    NotVerified(String),
    #[error("{0} is blocked")]
    Blocked(String),
}

/// Whether `email` has a verified device and is not blocked.
pub fn check_verified(book: &Contacts, email: &str) -> Result<(), TrustError> {
    match book.person(email) {
        Some(person) if person.blocked => Err(TrustError::Blocked(email.into())),
        Some(person) if person.is_verified() => Ok(()),
        _ => Err(TrustError::NotVerified(email.into())),
    }
}

/// The address a stranger's link proved, and whether that node is verified
/// for it; `None` for unknown nodes and blocked people.
pub fn sender_of(book: &Contacts, from: &NodeId) -> Option<(String, bool)> {
    let (email, person) = book.owner_of(from)?;
    if person.blocked {
        return None;
    }
    let verified = matches!(person.devices.get(from).map(|d| &d.trust), Some(Trust::Verified { .. }));
    Some((email.clone(), verified))
}

/// Nodes of people linked now, by address: those verified for it, and all
/// of them (blocked people, and nodes whose link claims another address
/// than the book knows them by, left out).
pub type ByAddress = BTreeMap<String, Vec<NodeId>>;

pub fn linked_people(book: &Contacts, linked: Vec<(NodeId, String)>) -> (ByAddress, ByAddress) {
    let mut trusted = ByAddress::new();
    let mut any = ByAddress::new();
    for (node, claimed) in linked {
        let Some((email, person)) = book.owner_of(&node) else { continue };
        if person.blocked || *email != normalize_email(&claimed) {
            continue;
        }
        any.entry(email.clone()).or_default().push(node);
        if matches!(person.devices.get(&node).map(|d| &d.trust), Some(Trust::Verified { .. })) {
            trusted.entry(email.clone()).or_default().push(node);
        }
    }
    (trusted, any)
}
