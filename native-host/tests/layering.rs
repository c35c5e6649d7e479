//! The import direction inside `mailmesh-host`, as ARCHITECTURE.md states it:
//! every top-level module sits on a layer and imports only from its own
//! layer or those below. `mailmesh-api` is a crate of its own that depends
//! on no mailmesh crate, so the compiler keeps it a leaf; this test keeps
//! the rest in order and fails, naming the file, when an import runs up.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module not named here fails the test: say
/// where a new one belongs.
const LAYERS: &[(&str, &[&str])] = &[
    // What everything may use: time, randomness, locks, the home's files.
    ("foundation", &["api", "framing", "clock", "rng", "sync", "home", "logging"]),
    // Each owns one kind of state on disk or one format.
    ("stores", &["account", "config", "identity", "joining", "transfer_store", "chat", "drive", "install"]),
    // Talking to the mail servers, and what the mailbox means to mailmesh.
    ("mail", &["mail", "mailbox", "enroll"]),
    // The LAN: links, discovery, the peer table. It knows no feature.
    ("mesh", &["mesh"]),
    // The engine: the services and the router that wires them.
    ("engine", &["engine"]),
    // Clients of a running engine, and the binary.
    ("clients", &["control", "spawn", "doctor", "native_host", "cli"]),
];

/// Below the clients only the engine's router and its socket server speak
/// the control protocol: services are asked through their own methods and
/// announce changes as `api::Event`s; the router turns requests into calls.
const PROTOCOL: &[&str] = &["Request", "Reply", "ReplyEnvelope", "Envelope"];
/// The files of the engine that may name them.
const ROUTER: &[&str] = &["engine/handlers.rs", "engine/server.rs"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate modules a file names (`crate::x`), tests left out.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with("mailmesh_") {
            continue;
        }
        let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        // Lower case is a module; `crate::VERSION` and the like are constants.
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            found.insert(name);
        }
    }
    found
}

/// The names a file takes from `api`: `crate::api::Name` and the names in
/// `use crate::api::{…}`.
fn api_names(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::api::") {
        let rest = &code[at + 12..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = group.split('}').next().unwrap_or_default();
                names.extend(group.split(',').map(|n| ident(n.trim())).filter(|n| !n.is_empty()));
            }
            None => {
                names.insert(ident(rest));
            }
        }
    }
    names
}

/// The protocol type a file names from `api`, if any.
fn speaks_protocol(text: &str) -> Option<&'static str> {
    let names = api_names(text);
    PROTOCOL.iter().copied().find(|name| names.contains(*name))
}

/// Every source file of the crate: its path under `src/` and its text.
fn sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.into_iter().map(|f| (f.strip_prefix(&src).unwrap().to_path_buf(), fs::read_to_string(&f).unwrap())).collect()
}

#[test]
fn imports_only_run_down_the_layers() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().to_string();
        let module = first.trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let Some(layer) = layer_of(module) else {
            problems.push(format!("{}: module `{module}` is on no layer; add it to LAYERS", relative.display()));
            continue;
        };
        for imported in imports(&text) {
            match layer_of(&imported) {
                Some(to) if to > layer => problems.push(format!(
                    "{}: `{module}` ({}) imports `{imported}` ({}), a layer above it",
                    relative.display(),
                    LAYERS[layer].0,
                    LAYERS[to].0
                )),
                None if imported != module => {
                    problems.push(format!("{}: imports `{imported}`, which is on no layer", relative.display()))
                }
                _ => {}
            }
        }
        let router = ROUTER.iter().any(|r| relative == Path::new(r));
        if layer <= layer_of("engine").unwrap() && module != "api" && !router {
            if let Some(name) = speaks_protocol(&text) {
                problems.push(format!(
                    "{}: `{module}` names `api::{name}`; only the router ({}) and clients may",
                    relative.display(),
                    ROUTER.join(", ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "the layering is broken:\n{}", problems.join("\n"));
}

#[test]
fn the_clock_and_randomness_are_read_in_one_place_each() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        let relative = relative.to_string_lossy().to_string();
        for (needle, home) in [("getrandom::", "rng.rs"), ("SystemTime::now", "clock.rs")] {
            if text.contains(needle) && relative != home {
                problems.push(format!("{relative} uses {needle}; ask {home}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_api_crate_depends_on_no_mailmesh_crate() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/Cargo.toml");
    let text = fs::read_to_string(manifest).unwrap();
    let dependencies = text.split("[dependencies]").nth(1).unwrap_or_default();
    assert!(!dependencies.contains("mailmesh"), "mailmesh-api must stay a leaf:\n{dependencies}");
}

#[test]
fn the_checker_sees_an_upward_import() {
    // A test that cannot fail is no test: the parser must find these.
    let text = "use crate::engine::Engine;\nfn f() { crate::mesh::x(); }\n#[cfg(test)]\nuse crate::cli;";
    assert_eq!(imports(text), BTreeSet::from(["engine".to_string(), "mesh".to_string()]));
    assert_eq!(speaks_protocol("use crate::api::Reply;"), Some("Reply"));
    assert_eq!(speaks_protocol("use crate::api::{FileView, Request};"), Some("Request"));
    assert_eq!(speaks_protocol("fn f() -> crate::api::ReplyEnvelope {}"), Some("ReplyEnvelope"));
    assert_eq!(speaks_protocol("use crate::api::{FileView, Origin}; // a Reply word"), None);
}
