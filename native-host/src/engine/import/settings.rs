//! How the import behaves, from `config.json` and the account's provider:
//! the folders, the daily budget, the start date and which attachments it
//! keeps ([`plan`]), and the owner's changes to them, checked
//! ([`apply`]) before `config.json` is written.

use chrono::NaiveDate;
use mailmesh_core::import::Budget;

use super::Plan;
use crate::api::{Account, ImportSettingsChange, ImportSettingsView};
use crate::config::Config;
use crate::drive::attachments::Policy;

const MB: u64 = 1_000_000;
const KB: u64 = 1_000;
/// More folders than anyone imports from (and what an import state holds).
const MAX_FOLDERS: usize = mailmesh_core::import::MAX_MARKS;

/// The plan a pass follows, and the same in the owner's words.
pub fn plan(config: &Config, account: Option<&Account>) -> (Plan, ImportSettingsView) {
    let provider = account.and_then(crate::mail::providers::of).and_then(|p| p.download_mb_per_day);
    let (budget, source) = match (config.import_budget_mb, provider) {
        (Some(0), _) => (None, "config"),
        (Some(mb), _) => (Some(Budget { bytes_per_day: mb * MB }), "config"),
        (None, Some(mb)) => (Some(Budget::of_provider_limit(mb * MB)), "provider"),
        (None, None) => (None, "none"),
    };
    let defaults = Policy::default();
    let policy = Policy {
        max_bytes: config.import_max_attachment_mb.map_or(defaults.max_bytes, |mb| mb * MB),
        inline_images_under: config.import_inline_images_under_kb.map_or(defaults.inline_images_under, |kb| kb * KB),
    };
    let since = config.import_since.as_deref().and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok());
    let view = ImportSettingsView {
        folders: config.mail_folders.clone(),
        since: since.map(|d| d.format("%Y-%m-%d").to_string()),
        max_attachment_bytes: policy.max_bytes,
        inline_images_under_bytes: policy.inline_images_under,
        budget_bytes_per_day: budget.map(|b| b.bytes_per_day),
        budget_source: source.into(),
    };
    (Plan { folders: config.mail_folders.clone(), budget, since, policy }, view)
}

/// A change the owner asked for that cannot be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("the start date must be a day written YYYY-MM-DD, like 2024-01-31 (or empty for all mail)")]
    Date,
    #[error("give between one and {MAX_FOLDERS} folders, each named")]
    Folders,
    #[error("the maximum attachment size must be between 1 and 100000 MB")]
    MaxAttachment,
}

/// Applies a change to `config` (nothing if any part of it is wrong).
pub fn apply(config: &mut Config, change: &ImportSettingsChange) -> Result<(), SettingsError> {
    let mut next = config.clone();
    if let Some(mb) = change.budget_mb {
        next.import_budget_mb = Some(mb);
    }
    if let Some(folders) = &change.folders {
        let folders: Vec<String> = folders.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
        let named = |f: &String| f.len() <= mailmesh_core::import::MAX_FOLDER && !f.chars().any(char::is_control);
        if folders.is_empty() || folders.len() > MAX_FOLDERS || !folders.iter().all(named) {
            return Err(SettingsError::Folders);
        }
        next.mail_folders = folders;
    }
    if let Some(day) = &change.since {
        next.import_since = match day.trim() {
            "" => None,
            day => Some(NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| SettingsError::Date)?.to_string()),
        };
    }
    if let Some(mb) = change.max_attachment_mb {
        if !(1..=100_000).contains(&mb) {
            return Err(SettingsError::MaxAttachment);
        }
        next.import_max_attachment_mb = Some(mb);
    }
    if let Some(kb) = change.inline_images_under_kb {
        next.import_inline_images_under_kb = Some(kb);
    }
    *config = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::decode(br#"{"version":1,"device_name":"laptop","created_at":1}"#).unwrap()
    }

    #[test]
    fn defaults_give_a_clean_drive_and_changes_are_checked_whole() {
        let mut config = config();
        let (first, view) = plan(&config, None);
        assert_eq!(first.folders, vec!["INBOX"]);
        assert_eq!((first.budget, first.since), (None, None));
        assert_eq!(view.max_attachment_bytes, 100 * MB);
        assert_eq!(view.inline_images_under_bytes, 16 * KB);

        let change = ImportSettingsChange {
            folders: Some(vec!["INBOX".into(), " Archive ".into()]),
            since: Some("2024-01-31".into()),
            max_attachment_mb: Some(25),
            inline_images_under_kb: Some(0),
            budget_mb: Some(500),
        };
        apply(&mut config, &change).unwrap();
        let (changed, view) = plan(&config, None);
        assert_eq!(changed.folders, vec!["INBOX", "Archive"]);
        assert_eq!(view.since.as_deref(), Some("2024-01-31"));
        assert_eq!(changed.policy, Policy { max_bytes: 25 * MB, inline_images_under: 0 });
        assert_eq!(changed.budget, Some(Budget { bytes_per_day: 500 * MB }));

        // A wrong part changes nothing.
        let wrong = ImportSettingsChange { since: Some("31/01/2024".into()), budget_mb: Some(1), ..Default::default() };
        assert_eq!(apply(&mut config, &wrong), Err(SettingsError::Date));
        assert_eq!(config.import_budget_mb, Some(500));
        let none = ImportSettingsChange { folders: Some(vec![" ".into()]), ..Default::default() };
        assert_eq!(apply(&mut config, &none), Err(SettingsError::Folders));
        apply(&mut config, &ImportSettingsChange { since: Some(String::new()), ..Default::default() }).unwrap();
        assert_eq!(config.import_since, None);
    }
}
