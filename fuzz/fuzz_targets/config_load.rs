//! `config_load`: the configuration loader (`Config::from_toml_str`, which
//! parses and validates) on arbitrary UTF-8, then every connector section
//! through the builtin registry (the `jwt` and `oidc_userinfo` factories:
//! settings, algorithms, keys, policy, injection, token sources, errors).
//!
//! Sections that would touch the network or the file system are not built:
//! `jwks_url`, `jwks_file`, `secret_file`, any `pem_file` (a fuzzed path could
//! name `/dev/zero`). `oidc_userinfo` never fetches while it is built.
//!
//! Asserts: no panic; a config that loads validates again; a refusal has at
//! least one error, every error carries a message, and a connector's errors
//! are located inside its own section (`connectors.NAME…`).

#![no_main]

use gatehouse_config::{Config, ConfigError};
use gatehouse_connectors::Registry;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
});

fn check_error(e: &ConfigError) {
    assert!(
        !e.message.is_empty(),
        "error without a message at {:?}",
        e.path
    );
}

/// True when building this section could read a file or the network.
fn touches_outside(settings: &toml::Table) -> bool {
    fn walk(v: &toml::Value) -> bool {
        match v {
            toml::Value::Table(t) => t.iter().any(|(k, v)| {
                matches!(
                    k.as_str(),
                    "jwks_url" | "jwks_file" | "secret_file" | "pem_file"
                ) || walk(v)
            }),
            toml::Value::Array(items) => items.iter().any(walk),
            _ => false,
        }
    }
    walk(&toml::Value::Table(settings.clone()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match Config::from_toml_str(text) {
        Ok(cfg) => cfg,
        Err(errs) => {
            assert!(errs.first().is_some(), "refused without an error");
            for e in errs.iter() {
                check_error(e);
            }
            return;
        }
    };
    if let Err(errs) = cfg.validate() {
        panic!("a loaded config fails validation: {errs}");
    }
    let registry = Registry::builtin();
    let metrics = prometheus::Registry::new();
    for (name, section) in &cfg.connectors {
        if touches_outside(&section.settings) {
            continue;
        }
        // Built and dropped at once (a jwt connector's tasks stop on drop).
        if let Err(errs) = RT.block_on(registry.build(name, section, &metrics, &Default::default())) {
            assert!(!errs.0.is_empty(), "a refused section says why");
            for e in &errs.0 {
                check_error(e);
                assert!(
                    e.path.starts_with(&format!("connectors.{name}")),
                    "error {:?} outside its section",
                    e.path
                );
            }
        }
    }
});
