//! The Gatehouse configuration: one TOML file, parsed into typed sections and
//! validated with errors that name the exact key at fault
//! (`routes[2].upstream: no upstream named "ordrs" (known: orders, users)`).
//!
//! This crate knows the shape of `[server]`, `[upstreams.*]`, `[[routes]]` and
//! the envelope of `[connectors.*]` (a `kind` plus kind-specific settings).
//! Kind-specific settings are deserialized by the connector that owns the kind,
//! through [`deserialize_section`], so their errors carry the same paths.
//!
//! ```
//! let cfg = gatehouse_config::Config::from_toml_str(r#"
//! [server]
//! listen = ["127.0.0.1:8080"]
//! [upstreams.app]
//! peers = ["127.0.0.1:9000"]
//! [[routes]]
//! name = "app"
//! path_prefix = "/"
//! upstream = "app"
//! "#).unwrap();
//! assert_eq!(cfg.routes[0].upstream, "app");
//! ```

mod cache;
mod duration;
mod edge;
mod error;
pub mod limits;
pub mod meter;
mod request;
mod route;
mod server;
mod steps;
mod upstream;

pub use cache::{CacheConfig, CacheKind};
pub use duration::HumanDuration;
pub use edge::{
    check_origin_pattern, check_rewrite_prefix, CorsConfig, HeaderRulesConfig, MAX_CORS_MAX_AGE,
};
pub use error::{ConfigError, ConfigErrors};
pub use meter::{LimitConfig, LimitKey};
pub use request::{
    is_header_name, parse_trusted_proxy, EncodedSlashes, PathParameters, TrailingDots, Upgrade,
    CLIENT_ADDRESS_HEADERS, METHOD_OVERRIDE_HEADERS, PATH_OVERRIDE_HEADERS,
};
pub use route::{normalize_host_pattern, RouteConfig, KNOWN_METHODS};
pub use server::{CertificateConfig, ClientAuth, ServerConfig, TlsListenerConfig, TlsVersion};
pub use steps::Step;
pub use upstream::{
    split_host_port, HealthCheckConfig, UpstreamConfig, MAX_RETRIES, MAX_UPSTREAM_INTERVAL,
    MIN_UPSTREAM_INTERVAL,
};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, threads, shutdown and logging.
    pub server: ServerConfig,
    /// Named upstream clusters.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Named connector instances (`kind` plus settings).
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorConfig>,
    /// Named shared caches (`[caches.NAME]`), used by connectors as an L2.
    #[serde(default)]
    pub caches: BTreeMap<String, CacheConfig>,
    /// Named request limits (`[limits.NAME]`): rates and quotas keyed on
    /// identity, listed by routes.
    #[serde(default)]
    pub limits: BTreeMap<String, LimitConfig>,
    /// Routes, matched by host, longest path prefix and method.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[connectors.NAME]`: the kind, and the kind's own settings (kept as TOML
/// until the connector's builder reads them with [`deserialize_section`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorConfig {
    /// The connector kind, e.g. `jwt` or `oidc_userinfo`.
    pub kind: String,
    /// Every other key of the section.
    pub settings: toml::Table,
}

impl schemars::JsonSchema for ConnectorConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConnectorConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "description": "A connector: `kind` plus the kind's settings.",
            "required": ["kind"],
            "properties": { "kind": { "type": "string" } }
        })
    }
}

impl<'de> Deserialize<'de> for ConnectorConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut settings = toml::Table::deserialize(d)?;
        match settings.remove("kind") {
            Some(toml::Value::String(kind)) => Ok(Self { kind, settings }),
            Some(other) => Err(D::Error::custom(format!(
                "`kind` must be a string, found {}",
                other.type_str()
            ))),
            None => Err(D::Error::custom(
                "missing key `kind` (the connector kind, e.g. kind = \"jwt\")",
            )),
        }
    }
}

pub(crate) fn default_true() -> bool {
    true
}

/// Deserializes `value` into `T`, reporting any error with its full key path
/// below `prefix` (for example `connectors.corp.jwks_refresh`).
pub fn deserialize_section<T: DeserializeOwned>(
    prefix: &str,
    value: toml::Table,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            prefix.to_string()
        } else if prefix.is_empty() {
            inner
        } else {
            format!("{prefix}.{inner}")
        };
        ConfigError::new(path, clean_message(&e.inner().to_string()))
    })
}

/// The message of a toml/serde error without toml's source snippet.
fn clean_message(msg: &str) -> String {
    msg.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with("-->"))
        .filter(|l| !l.chars().next().is_some_and(|c| c.is_ascii_digit()) || !l.contains('|'))
        .filter(|l| !l.starts_with("TOML parse error"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates configuration text.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let mut err =
                ConfigError::new("", format!("invalid TOML: {}", clean_message(e.message())));
            err.line = e.span().map(|s| line_of(text, s.start));
            err
        })?;
        let mut track = serde_path_to_error::Track::new();
        let cfg = Config::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
            .map_err(|e| {
                let p = track.path().to_string();
                let mut err = ConfigError::new(
                    if p == "." { String::new() } else { p },
                    clean_message(e.message()),
                );
                err.line = e.span().map(|s| line_of(text, s.start));
                err
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Cross-checks the sections: names, references, duplicates, limits.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        for (name, c) in &self.caches {
            c.validate(&format!("caches.{name}"), &mut errs);
        }
        self.server.validate(&mut errs);
        for (name, up) in &self.upstreams {
            up.validate(name, &mut errs);
        }
        for (name, c) in &self.connectors {
            let p = format!("connectors.{name}");
            check_name(&p, name, &mut errs);
            if c.kind.trim().is_empty() {
                errs.push(ConfigError::new(format!("{p}.kind"), "must not be empty"));
            }
        }

        route::validate(&self.routes, &self.upstreams, &self.connectors, &mut errs);
        for (name, l) in &self.limits {
            l.validate(name, &self.caches, &mut errs);
        }
        for (i, r) in self.routes.iter().enumerate() {
            for (j, name) in r.limits.iter().enumerate() {
                let p = format!("routes[{i}].limits[{j}]");
                match self.limits.get(name) {
                    None => errs.push(ConfigError::new(
                        p,
                        format!("no [limits.{name}] (known: {})", known(self.limits.keys())),
                    )),
                    Some(l) if l.key != LimitKey::ClientIp && r.connectors.is_empty() => {
                        errs.push(ConfigError::new(
                            p,
                            format!(
                                "limit {name} counts by a verified identity, and route {} has no connectors (use key = \"client_ip\" on a public route)",
                                r.name
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                if r.limits[..j].contains(name) {
                    errs.push(ConfigError::new(
                        format!("routes[{i}].limits[{j}]"),
                        format!("{name} is listed twice"),
                    ));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none defined".to_string()
    } else {
        v.join(", ")
    }
}

pub(crate) fn check_name(path: &str, name: &str, errs: &mut Vec<ConfigError>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        errs.push(ConfigError::new(
            path,
            format!("invalid name \"{name}\": use 1-64 characters from A-Z a-z 0-9 _ -"),
        ));
    }
}

#[cfg(test)]
mod tests;
