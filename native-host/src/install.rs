//! Registering the native host with browsers.
//!
//! A browser finds a native host through a JSON manifest named after the
//! host in a per-browser directory. `install` writes one for each chosen
//! browser (and, with `--user-data-dir`, into that profile directory, which
//! Chromium also searches). When the node home is not the default one, the
//! manifest points at a small wrapper script in the home that passes
//! `--home`, because the browser starts the host with no way to say which
//! home to use.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::home::{write_private, NodeHome};
use crate::{EXTENSION_ID, HOST_NAME};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Browser {
    Chrome,
    Chromium,
    Brave,
    Edge,
    All,
}

impl Browser {
    pub const EACH: [Browser; 4] = [Browser::Chrome, Browser::Chromium, Browser::Brave, Browser::Edge];

    pub fn expand(self) -> Vec<Browser> {
        match self {
            Browser::All => Browser::EACH.to_vec(),
            one => vec![one],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Browser::Chrome => "Chrome",
            Browser::Chromium => "Chromium",
            Browser::Brave => "Brave",
            Browser::Edge => "Edge",
            Browser::All => "all browsers",
        }
    }

    /// The per-user directory where this browser looks for host manifests.
    pub fn manifest_dir(self) -> Option<PathBuf> {
        let base = if cfg!(target_os = "macos") {
            dirs::home_dir()?.join("Library/Application Support")
        } else {
            dirs::config_dir()?
        };
        let sub = match (self, cfg!(target_os = "macos")) {
            (Browser::Chrome, false) => "google-chrome",
            (Browser::Chrome, true) => "Google/Chrome",
            (Browser::Chromium, _) => "chromium",
            (Browser::Brave, _) => "BraveSoftware/Brave-Browser",
            (Browser::Edge, false) => "microsoft-edge",
            (Browser::Edge, true) => "Microsoft Edge",
            (Browser::All, _) => return None,
        };
        let sub = if cfg!(target_os = "macos") && self == Browser::Chromium { "Chromium" } else { sub };
        Some(base.join(sub).join("NativeMessagingHosts"))
    }
}

/// The native messaging host manifest, as Chrome documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostManifest {
    pub name: String,
    pub description: String,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("cannot find this program's own path: {0}")]
    Exe(io::Error),
    #[error("cannot find the configuration directory of {0}")]
    NoDir(&'static str),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

pub fn extension_origin() -> String {
    format!("chrome-extension://{EXTENSION_ID}/")
}

pub fn manifest_file(dir: &Path) -> PathBuf {
    dir.join(format!("{HOST_NAME}.json"))
}

/// The directories a command acts on: the chosen browsers, plus the profile.
pub fn target_dirs(browser: Browser, user_data_dir: Option<&Path>) -> Result<Vec<(String, PathBuf)>, InstallError> {
    let mut out = Vec::new();
    if let Some(profile) = user_data_dir {
        let profile = std::path::absolute(profile).unwrap_or_else(|_| profile.to_path_buf());
        out.push((format!("profile {}", profile.display()), profile.join("NativeMessagingHosts")));
        return Ok(out);
    }
    for b in browser.expand() {
        out.push((b.name().to_string(), b.manifest_dir().ok_or(InstallError::NoDir(b.name()))?));
    }
    Ok(out)
}

/// Writes the host manifests; returns the files written.
pub fn install(home: &NodeHome, browser: Browser, user_data_dir: Option<&Path>) -> Result<Vec<PathBuf>, InstallError> {
    let exe = std::env::current_exe().map_err(InstallError::Exe)?;
    let host_path = if home.is_default() {
        exe
    } else {
        write_wrapper(home, &exe)?;
        home.host_wrapper()
    };
    let manifest = HostManifest {
        name: HOST_NAME.to_string(),
        description: "mailmesh: your devices, linked by your email address".to_string(),
        path: host_path.display().to_string(),
        kind: "stdio".to_string(),
        allowed_origins: vec![extension_origin()],
    };
    let body = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let mut written = Vec::new();
    for (_, dir) in target_dirs(browser, user_data_dir)? {
        fs::create_dir_all(&dir).map_err(|source| InstallError::Write { path: dir.clone(), source })?;
        let file = manifest_file(&dir);
        write_private(&file, &body, 0o644).map_err(|source| InstallError::Write { path: file.clone(), source })?;
        written.push(file);
    }
    Ok(written)
}

/// Removes the manifests (and the wrapper); returns the files removed.
pub fn uninstall(
    home: &NodeHome,
    browser: Browser,
    user_data_dir: Option<&Path>,
) -> Result<Vec<PathBuf>, InstallError> {
    let mut removed = Vec::new();
    for (_, dir) in target_dirs(browser, user_data_dir)? {
        let file = manifest_file(&dir);
        if fs::remove_file(&file).is_ok() {
            removed.push(file);
        }
    }
    if fs::remove_file(home.host_wrapper()).is_ok() {
        removed.push(home.host_wrapper());
    }
    Ok(removed)
}

fn write_wrapper(home: &NodeHome, exe: &Path) -> Result<(), InstallError> {
    home.ensure().map_err(|e| InstallError::Write { path: home.root().to_path_buf(), source: io::Error::other(e) })?;
    let script = format!(
        "#!/bin/sh\n# Written by `mailmesh install`: starts the native host for this node home.\nexec {} --home {} \"$@\"\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&home.root().display().to_string()),
    );
    let path = home.host_wrapper();
    write_private(&path, script.as_bytes(), 0o700)
        .map_err(|source| InstallError::Write { path: path.clone(), source })?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(|source| InstallError::Write { path, source })
}

/// Single-quotes a string for POSIX sh.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_install_writes_a_manifest_and_wrapper_then_uninstall_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        let home = NodeHome::at(dir.path().join("home"));
        let profile = dir.path().join("profile");
        let written = install(&home, Browser::All, Some(&profile)).unwrap();
        assert_eq!(written, vec![profile.join("NativeMessagingHosts/org.mailmesh.host.json")]);
        let manifest: HostManifest = serde_json::from_slice(&fs::read(&written[0]).unwrap()).unwrap();
        assert_eq!(manifest.allowed_origins, vec![extension_origin()]);
        assert_eq!(PathBuf::from(&manifest.path), home.host_wrapper());
        let script = fs::read_to_string(home.host_wrapper()).unwrap();
        assert!(script.contains("--home"));
        let removed = uninstall(&home, Browser::All, Some(&profile)).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(!written[0].exists());
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
