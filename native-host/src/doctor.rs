//! `mailmesh doctor`: finds what stops the browser from reaching the host,
//! and says how to fix each thing.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::control::Control;
use crate::home::NodeHome;
use crate::install::{extension_origin, manifest_file, target_dirs, Browser, HostManifest};
use crate::HOST_NAME;

/// One finding: what was checked, whether it is fine, and the fix if not.
pub struct Finding {
    pub ok: bool,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(what: impl Into<String>) -> Finding {
        Finding { ok: true, what: what.into(), fix: None }
    }
    fn bad(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { ok: false, what: what.into(), fix: Some(fix.into()) }
    }
}

pub async fn diagnose(home: &NodeHome, user_data_dir: Option<&Path>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let home_flag = if home.is_default() { String::new() } else { format!(" --home {}", home.root().display()) };
    let reinstall = match user_data_dir {
        Some(p) => format!("run `mailmesh{home_flag} install --user-data-dir {}`", p.display()),
        None => format!("run `mailmesh{home_flag} install`"),
    };
    match target_dirs(Browser::All, user_data_dir) {
        Ok(dirs) => {
            let mut any = false;
            for (browser, dir) in dirs {
                let file = manifest_file(&dir);
                if !file.exists() {
                    continue;
                }
                any = true;
                findings.extend(check_manifest(&browser, &file, &reinstall));
            }
            if !any {
                findings.push(Finding::bad("no browser has the mailmesh native host manifest", reinstall.clone()));
            }
        }
        Err(e) => findings.push(Finding::bad(e.to_string(), "pass --user-data-dir DIR")),
    }
    findings.extend(check_home(home));
    match Control::connect(home).await {
        Ok(mut control) => match control.request(crate::api::Request::Ping).await {
            Ok(_) => findings.push(Finding::ok("the engine is running and answers")),
            Err(e) => findings.push(Finding::bad(
                format!("the engine does not answer: {e}"),
                "run `mailmesh stop`, then `mailmesh run --detach`",
            )),
        },
        Err(_) => findings.push(Finding::bad(
            "the engine is not running",
            format!("run `mailmesh{home_flag} run --detach`, or open the browser with the extension"),
        )),
    }
    findings
}

fn check_manifest(browser: &str, file: &Path, reinstall: &str) -> Vec<Finding> {
    let shown = file.display();
    let manifest: HostManifest = match fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => return vec![Finding::bad(format!("{browser}: {shown} is unreadable: {e}"), reinstall)],
    };
    let mut out = Vec::new();
    if manifest.name != HOST_NAME || manifest.kind != "stdio" {
        out.push(Finding::bad(format!("{browser}: {shown} has the wrong name or type"), reinstall));
    }
    if manifest.allowed_origins.contains(&extension_origin()) {
        out.push(Finding::ok(format!("{browser}: manifest allows the mailmesh extension ({})", extension_origin())));
    } else {
        out.push(Finding::bad(format!("{browser}: {shown} does not allow {}", extension_origin()), reinstall));
    }
    let path = Path::new(&manifest.path);
    let executable = fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if !path.is_absolute() {
        out.push(Finding::bad(format!("{browser}: host path {} is not absolute", manifest.path), reinstall));
    } else if !executable {
        out.push(Finding::bad(
            format!("{browser}: host program {} is missing or not executable", manifest.path),
            reinstall,
        ));
    } else {
        out.push(Finding::ok(format!("{browser}: host program {}", manifest.path)));
    }
    out
}

fn check_home(home: &NodeHome) -> Vec<Finding> {
    let mut out = Vec::new();
    let root = home.root();
    match fs::metadata(root) {
        Err(_) => {
            out.push(Finding::bad(
                format!("node home {} does not exist", root.display()),
                "run `mailmesh run --detach` once to create it",
            ));
            return out;
        }
        Ok(m) if m.permissions().mode() & 0o077 != 0 => out.push(Finding::bad(
            format!("node home {} is open to other users (mode {:o})", root.display(), m.permissions().mode() & 0o777),
            format!("run `chmod 700 {}`", root.display()),
        )),
        Ok(_) => out.push(Finding::ok(format!("node home {} is private", root.display()))),
    }
    let key = home.key_file();
    match fs::metadata(&key) {
        Err(_) => out.push(Finding::bad("the node has no key yet", "start the engine once: `mailmesh run --detach`")),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => out.push(Finding::bad(
            format!("the node key {} can be read by other users", key.display()),
            format!("run `chmod 600 {}`", key.display()),
        )),
        Ok(_) => out.push(Finding::ok("the node key is private (mode 600)")),
    }
    out
}
