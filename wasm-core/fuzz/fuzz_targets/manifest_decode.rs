//! Manifests arrive from other nodes: decoding any bytes must never panic
//! or allocate without bound, and whatever decodes must re-encode to the
//! same bytes (there is exactly one encoding of a manifest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailmesh_core::drive::{Manifest, NetworkKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::decode(data) {
        assert_eq!(manifest.encode(), data);
        // Opening is authenticated: random manifests must not open.
        let _ = manifest.open(&NetworkKey::from_bytes([0x42; 32]));
    }
});
