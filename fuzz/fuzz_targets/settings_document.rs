//! The per-VM settings document on untrusted bytes (a config drive's file,
//! an MMDS answer): parsing must never panic, whatever it accepts must pass
//! the checks the init relies on (secret paths below /run/secrets, names
//! without `=`), and no problem message may quote a secret's bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mkrootfs_config::settings::{check_env_name, check_secret_name, parse_document, SEED_BYTES};

fuzz_target!(|data: &[u8]| {
    let (s, problems) = parse_document(data);
    for name in s.secrets.keys() {
        assert!(check_secret_name(name).is_ok(), "{name:?}");
    }
    for name in s.env.keys() {
        assert!(check_env_name(name).is_ok());
    }
    if let Some(seed) = &s.seed {
        assert!(SEED_BYTES.contains(&seed.0.len()));
    }
    for p in &problems {
        for secret in s.secrets.values() {
            if secret.data.len() >= 8 {
                let text = String::from_utf8_lossy(&secret.data);
                assert!(!p.message.contains(text.as_ref()));
            }
        }
    }
});
