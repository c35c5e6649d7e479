//! The `mailmesh` binary as the browser and a user meet it: started as a
//! native-messaging host with malformed input, and as a second engine.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use byteorder::{ByteOrder, NativeEndian};
use serde_json::Value;

const ORIGIN: &str = "chrome-extension://pjbfgnkmdcidapkfndhmnmhimjcloilo/";

fn mailmesh(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailmesh"));
    cmd.arg("--home").arg(home);
    cmd
}

/// Starts the bridge the way Chrome does.
fn bridge(home: &Path) -> Child {
    mailmesh(home)
        .arg(ORIGIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bridge starts")
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    NativeEndian::write_u32(&mut out, body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn read_frame(r: &mut impl Read) -> Value {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).expect("a reply frame");
    let mut body = vec![0u8; NativeEndian::read_u32(&len) as usize];
    r.read_exact(&mut body).expect("the reply body");
    serde_json::from_slice(&body).expect("replies are JSON")
}

fn stop(home: &Path) {
    let _ = mailmesh(home).arg("stop").output();
}

#[test]
fn malformed_native_messages_get_error_replies_and_the_bridge_survives() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut child = bridge(home);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();

    // The bridge starts an engine and says so.
    assert_eq!(read_frame(&mut stdout)["state"], "up");

    let cases: [(&[u8], &str); 4] = [
        (&[0xff, 0xfe, 0x00], "invalid_utf8"),
        (b"{\"type\": ", "invalid_json"),
        (br#"{"id":3,"type":"format_disk"}"#, "unknown_type"),
        (br#"["not","an","object"]"#, "invalid_message"),
    ];
    for (body, code) in cases {
        stdin.write_all(&frame(body)).unwrap();
        let reply = read_frame(&mut stdout);
        assert_eq!(reply["type"], "error", "for {code}");
        assert_eq!(reply["code"], code);
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // A frame announced larger than 64 MiB is refused, skipped, and the
    // connection still works afterwards.
    let huge = 64 * 1024 * 1024 + 1;
    let mut header = [0u8; 4];
    NativeEndian::write_u32(&mut header, huge);
    stdin.write_all(&header).unwrap();
    assert_eq!(read_frame(&mut stdout)["code"], "message_too_large");
    let filler = vec![b' '; 1 << 20];
    let mut left = huge as usize;
    while left > 0 {
        let n = left.min(filler.len());
        stdin.write_all(&filler[..n]).unwrap();
        left -= n;
    }

    stdin.write_all(&frame(br#"{"id":9,"type":"status"}"#)).unwrap();
    let status = read_frame(&mut stdout);
    assert_eq!(status["id"], 9);
    assert_eq!(status["type"], "status");
    assert_eq!(status["home"], home.display().to_string());

    // A frame cut off by the browser: the bridge exits cleanly and says why.
    stdin.write_all(&[20, 0, 0, 0, b'{']).unwrap();
    drop(stdin);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "the bridge exits cleanly, got {exit}");
    let log = std::fs::read_to_string(home.join("logs/native-host.log")).unwrap();
    assert!(log.contains("in the middle of a message"), "log says why: {log}");

    // Closing the browser did not stop the engine.
    let out = mailmesh(home).args(["status", "--json"]).output().unwrap();
    assert!(out.status.success());
    stop(home);
}

#[test]
fn a_second_engine_for_the_same_home_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let out = mailmesh(home).args(["run", "--detach"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let second = mailmesh(home).arg("run").output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already running"), "says why: {err}");

    // The first engine is untouched.
    let status = mailmesh(home).args(["status", "--json"]).output().unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["engine_pid"].as_u64().unwrap() > 0);
    assert_eq!(status["fingerprint"].as_str().unwrap().len(), 39);
    stop(home);
}

#[test]
fn keys_and_config_are_private_and_the_cli_explains_a_stopped_engine() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("node");
    let out = mailmesh(&home).arg("status").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running"));

    assert!(mailmesh(&home).args(["run", "--detach"]).status().unwrap().success());
    for (file, mode) in [("node.key", 0o600), ("config.json", 0o600), ("engine.sock", 0o600), (".", 0o700)] {
        let meta = std::fs::metadata(home.join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    stop(&home);
    // `stop` waits for the engine to be gone.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!home.join("engine.sock").exists());
}
