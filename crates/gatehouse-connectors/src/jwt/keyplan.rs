//! Where a `jwt` connector's keys come from: a JWKS URL or file (fetched by
//! the [`KeyStore`](super::KeyStore)), or static keys read at build (inline
//! JWKS, PEM public keys, an HMAC secret). Every error of the section is
//! reported at once.

use super::keys::{self, KeySet};
use super::rules::Rules;
use super::settings::{JwtSettings, SecretEncoding};
use super::store::{KeySource, StoreSettings};
use super::{parse_jwks, Alg};
use crate::kit::Problems;
use crate::limits::{self, at_most};
use crate::outbound::{client, parse_url};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use gatehouse_config::{ConfigError, ConfigErrors};
use std::time::Duration;

/// The connector's key plan.
pub(super) struct KeyPlan {
    /// Where keys are (re)loaded from.
    pub source: KeySource,
    /// Refresh and staleness.
    pub settings: StoreSettings,
    /// Keys known at build (static sources).
    pub initial: Option<KeySet>,
}

impl KeyPlan {
    /// Compiles the key settings of the section at `path`.
    pub(super) fn compile(
        path: &str,
        s: &JwtSettings,
        rules: &Rules,
    ) -> Result<Self, ConfigErrors> {
        let mut p = Problems::new();
        let at = |k: &str| format!("{path}.{k}");
        let hmac = rules.hmac();
        let jwks_sources = [
            s.jwks_url.is_some(),
            s.jwks_file.is_some(),
            s.jwks.is_some(),
            !s.public_keys.is_empty(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let secret_sources = usize::from(s.secret.is_some()) + usize::from(s.secret_file.is_some());
        if hmac {
            if jwks_sources > 0 {
                p.push(ConfigError::new(at("algorithms"), "HS* algorithms verify with `secret` or `secret_file`, not with JWKS or public keys"));
            }
            if secret_sources != 1 {
                p.push(ConfigError::new(
                    path,
                    "give exactly one of `secret` or `secret_file` for HS* algorithms",
                ));
            }
        } else {
            if secret_sources > 0 {
                p.push(ConfigError::new(
                    at(if s.secret.is_some() {
                        "secret"
                    } else {
                        "secret_file"
                    }),
                    "a secret only verifies HS* algorithms",
                ));
            }
            if jwks_sources != 1 {
                p.push(ConfigError::new(
                    path,
                    "give exactly one key source: `jwks_url`, `jwks_file`, `jwks` or `public_keys`",
                ));
            }
        }
        if !p.is_empty() {
            return p.finish(None);
        }

        let refresh = p.check(at_most(
            path,
            "jwks_refresh",
            s.jwks_refresh.get(),
            limits::MAX_JWKS_REFRESH,
        ));
        let min_refetch = p.check(at_most(
            path,
            "jwks_min_refetch_interval",
            s.jwks_min_refetch_interval.get(),
            limits::MAX_JWKS_REFRESH,
        ));
        let max_stale = p.check(at_most(
            path,
            "jwks_max_stale",
            s.jwks_max_stale.get(),
            limits::MAX_JWKS_STALE,
        ));
        let timeout = p.check(at_most(
            path,
            "jwks_timeout",
            s.jwks_timeout.get(),
            limits::MAX_IDP_TIMEOUT,
        ));
        let source = match (&s.jwks_url, &s.jwks_file) {
            (Some(u), _) => {
                let url = p.check(parse_url(path, "jwks_url", u));
                let client =
                    timeout.and_then(|t| p.check(client(path, t, s.http_proxy.as_deref())));
                url.zip(client)
                    .map(|(url, client)| KeySource::Url { url, client })
            }
            (None, Some(f)) => Some(KeySource::File(f.clone())),
            _ => Some(KeySource::Static),
        };

        let initial = if let Some(text) = &s.jwks {
            match parse_jwks(text.as_bytes()) {
                Ok((set, skipped)) => {
                    for sk in skipped {
                        tracing::info!("{path}.jwks: {sk}; skipped");
                    }
                    if set.keys.is_empty() {
                        p.push(ConfigError::new(at("jwks"), "no usable signature key"));
                    }
                    Some(set)
                }
                Err(e) => {
                    p.push(ConfigError::new(at("jwks"), e));
                    None
                }
            }
        } else if !s.public_keys.is_empty() {
            Some(pem_keys(path, s, &mut p))
        } else if hmac {
            secret_key(path, s, &rules.algorithms, &mut p)
        } else {
            None
        };

        let plan = (|| {
            Some(KeyPlan {
                source: source?,
                settings: StoreSettings {
                    refresh: refresh?.max(Duration::from_secs(1)),
                    min_refetch_interval: min_refetch?,
                    max_stale: max_stale?,
                },
                initial,
            })
        })();
        p.finish(plan)
    }
}

/// `public_keys`: each PEM read and parsed (errors name the key).
fn pem_keys(path: &str, s: &JwtSettings, p: &mut Problems) -> KeySet {
    let mut set = KeySet::default();
    for (i, pk) in s.public_keys.iter().enumerate() {
        let at = format!("{path}.public_keys[{i}]");
        let pem = match (&pk.pem_file, &pk.pem) {
            (Some(f), None) => p.check(
                crate::files::read_file(f)
                    .map_err(|e| ConfigError::new(format!("{at}.pem_file"), e)),
            ),
            (None, Some(t)) => Some(t.clone().into_bytes()),
            _ => {
                p.push(ConfigError::new(&at, "give exactly one of pem_file or pem"));
                None
            }
        };
        if let Some(pem) = pem {
            if let Some(k) = p.check(
                keys::key_from_pem(pk.kid.clone(), &pem).map_err(|e| ConfigError::new(&at, e)),
            ) {
                set.keys.push(k);
            }
        }
    }
    set
}

/// The HMAC secret (`secret` or `secret_file`, decoded, long enough for
/// every allowed algorithm: RFC 7518 §3.2).
fn secret_key(path: &str, s: &JwtSettings, algorithms: &[Alg], p: &mut Problems) -> Option<KeySet> {
    let (raw, key) = match (&s.secret, &s.secret_file) {
        (Some(t), _) => (t.clone().into_bytes(), "secret"),
        (_, Some(f)) => (
            p.check(
                crate::files::read_file(f)
                    .map_err(|e| ConfigError::new(format!("{path}.secret_file"), e)),
            )?,
            "secret_file",
        ),
        (None, None) => return None,
    };
    let secret = match s.secret_encoding {
        SecretEncoding::Utf8 => {
            let mut r = raw;
            while r.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                r.pop();
            }
            r
        }
        SecretEncoding::Base64 => {
            let t = String::from_utf8_lossy(&raw).trim().to_string();
            p.check(
                STANDARD
                    .decode(&t)
                    .or_else(|_| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')))
                    .map_err(|_| ConfigError::new(format!("{path}.{key}"), "not valid base64")),
            )?
        }
    };
    let need = algorithms
        .iter()
        .map(|a| match a {
            Alg::HS384 => 48,
            Alg::HS512 => 64,
            _ => 32,
        })
        .max()
        .unwrap_or(32);
    if secret.len() < need {
        p.push(ConfigError::new(
            format!("{path}.{key}"),
            format!(
                "secret is {} bytes; the allowed algorithms need at least {need} (RFC 7518 §3.2)",
                secret.len()
            ),
        ));
        return None;
    }
    Some(KeySet {
        keys: vec![keys::key_from_secret(&secret)],
    })
}
