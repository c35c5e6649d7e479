//! The node's configuration file (`config.json` in the home, mode 0600).
//!
//! Versioned JSON. Created with defaults on first start; a file from a newer
//! mailmesh is refused rather than silently rewritten.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::home::{write_private, NodeHome};

pub const CONFIG_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    /// What this device is called in rosters and mails ("laptop", "nas").
    pub device_name: String,
    /// Unix seconds when this node was first started.
    pub created_at: u64,
    /// The loopback HTTP port (confirmation links), kept stable so that a
    /// link mailed before a restart still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback_port: Option<u16>,
    /// The LAN port of the host-to-host link, kept stable across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_port: Option<u16>,
    /// The mail folders whose attachments are imported (INBOX by default).
    #[serde(default = "default_folders")]
    pub mail_folders: Vec<String>,
    /// The import's daily download budget in MB, for all the owner's
    /// devices together; `0`: none. Unset: the provider's (Gmail: 80 % of
    /// its 2,500 MB a day), none for other servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_budget_mb: Option<u64>,
    /// Mail that arrived before this day (`YYYY-MM-DD`) is not imported;
    /// unset: all of it. It applies to mail not read yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_since: Option<String>,
    /// Attachments larger than this (MB) stay in the mailbox; unset: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_max_attachment_mb: Option<u64>,
    /// Inline images smaller than this (kB) are not imported (logos,
    /// icons); `0`: every one; unset: 16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_inline_images_under_kb: Option<u64>,
    /// A device was removed since the mail password was last given: the
    /// owner is asked to change it (the removed device knew it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub change_password: bool,
    /// When the owner last gave the mail password on one of their devices
    /// after a removal (0: never); the newest is handed to the others.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub password_set_ms: u64,
    /// When a device with a mailmesh from before its mail folder was last
    /// heard from in the inbox (0: never); see `engine/node/filing.rs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub older_version_heard_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn default_folders() -> Vec<String> {
    vec!["INBOX".to_string()]
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} is not valid mailmesh configuration: {source}")]
    Invalid { path: PathBuf, source: serde_json::Error },
    #[error("{path} was written by a newer mailmesh (config version {found}); update mailmesh")]
    Newer { path: PathBuf, found: u32 },
}

impl Config {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Config, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Saves the config (mode 0600).
pub fn save(home: &NodeHome, config: &Config) -> Result<(), ConfigError> {
    let path = home.config_file();
    write_private(&path, &config.encode(), 0o600).map_err(|source| ConfigError::Write { path, source })
}

/// Loads the config, creating it with defaults on first start.
pub fn load_or_create(home: &NodeHome, now_unix: u64) -> Result<Config, ConfigError> {
    let path = home.config_file();
    match fs::read(&path) {
        Ok(bytes) => {
            let config =
                Config::decode(&bytes).map_err(|source| ConfigError::Invalid { path: path.clone(), source })?;
            if config.version > CONFIG_VERSION {
                return Err(ConfigError::Newer { path, found: config.version });
            }
            Ok(config)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let config = Config {
                version: CONFIG_VERSION,
                device_name: default_device_name(),
                created_at: now_unix,
                loopback_port: None,
                link_port: None,
                mail_folders: default_folders(),
                import_budget_mb: None,
                import_since: None,
                import_max_attachment_mb: None,
                import_inline_images_under_kb: None,
                change_password: false,
                password_set_ms: 0,
                older_version_heard_ms: 0,
            };
            write_private(&path, &config.encode(), 0o600).map_err(|source| ConfigError::Write { path, source })?;
            Ok(config)
        }
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

fn default_device_name() -> String {
    let name = gethostname::gethostname().to_string_lossy().trim().to_string();
    if name.is_empty() {
        "mailmesh node".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn config_round_trips(name in ".{0,40}", created in any::<u64>()) {
            let c = Config { version: CONFIG_VERSION, device_name: name, created_at: created, loopback_port: Some(8080), import_budget_mb: None, import_since: None, import_max_attachment_mb: None, import_inline_images_under_kb: None, link_port: Some(9), mail_folders: vec!["INBOX".into(), "Archive".into()], change_password: false, password_set_ms: 0, older_version_heard_ms: 0 };
            prop_assert_eq!(Config::decode(&c.encode()).unwrap(), c);
        }
    }

    #[test]
    fn newer_config_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path());
        home.ensure().unwrap();
        write_private(&home.config_file(), br#"{"version":99,"device_name":"x","created_at":1}"#, 0o600).unwrap();
        assert!(matches!(load_or_create(&home, 5), Err(ConfigError::Newer { found: 99, .. })));
    }
}
