//! Token tooling for API developers: mint test tokens, inspect a token and
//! explain what a route would do with it, and build a JWKS from PEM keys.

use anyhow::{anyhow, bail, Context};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_connectors::{Denial, Registry, RequestView, Verdict};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `token mint` signs.
#[derive(Debug, Clone)]
pub struct MintOptions {
    /// Algorithm.
    pub alg: Algorithm,
    /// Private key PEM file (RS*, PS*, ES*, EdDSA).
    pub key: Option<PathBuf>,
    /// HMAC secret (HS*).
    pub secret: Option<String>,
    /// `kid` header.
    pub kid: Option<String>,
    /// `iss`.
    pub iss: Option<String>,
    /// `aud` (several → an array).
    pub aud: Vec<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// Lifetime (`exp` = now + this); `iat` and `nbf` are now.
    pub exp: Duration,
    /// Extra claims `name=value` (value parsed as JSON when it is valid JSON).
    pub claims: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn encoding_key(o: &MintOptions) -> anyhow::Result<EncodingKey> {
    Ok(match (&o.key, &o.secret) {
        (Some(path), None) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            match o.alg {
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                    bail!("{:?} signs with --secret, not --key", o.alg)
                }
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .with_context(|| format!("{} is not a private key for {:?}", path.display(), o.alg))?
        }
        (None, Some(secret)) => {
            if !matches!(
                o.alg,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ) {
                bail!("--secret only signs HS256/HS384/HS512");
            }
            EncodingKey::from_secret(secret.as_bytes())
        }
        _ => bail!("give exactly one of --key (PEM private key) or --secret"),
    })
}

/// Signs a token.
pub fn mint(o: &MintOptions) -> anyhow::Result<String> {
    Ok(mint_many(o, 1)?.remove(0))
}

/// Signs `count` tokens (the key parsed once); with `count > 1` each gets a
/// distinct `jti`.
pub fn mint_many(o: &MintOptions, count: usize) -> anyhow::Result<Vec<String>> {
    let key = encoding_key(o)?;
    let n = now();
    let mut claims = serde_json::Map::new();
    claims.insert("iat".into(), json!(n));
    claims.insert("nbf".into(), json!(n));
    claims.insert("exp".into(), json!(n + o.exp.as_secs()));
    if let Some(v) = &o.iss {
        claims.insert("iss".into(), json!(v));
    }
    if let Some(v) = &o.sub {
        claims.insert("sub".into(), json!(v));
    }
    match o.aud.len() {
        0 => {}
        1 => {
            claims.insert("aud".into(), json!(o.aud[0]));
        }
        _ => {
            claims.insert("aud".into(), json!(o.aud));
        }
    }
    for c in &o.claims {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow!("--claim {c}: write name=value"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        claims.insert(k.to_string(), value);
    }
    let mut header = Header::new(o.alg);
    header.typ = Some("JWT".into());
    header.kid = o.kid.clone();
    let mut out = Vec::with_capacity(count.max(1));
    for i in 0..count.max(1) {
        if count > 1 {
            claims.insert("jti".into(), json!(format!("t{i}")));
        }
        out.push(
            jsonwebtoken::encode(&header, &Value::Object(claims.clone()), &key)
                .context("signing")?,
        );
    }
    Ok(out)
}

fn decode_part(part: &str, what: &str) -> anyhow::Result<Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| anyhow!("the {what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| anyhow!("the {what} is not JSON"))
}

fn describe_time(label: &str, v: Option<&Value>, n: u64) -> Option<String> {
    let t = v?.as_f64()? as u64;
    let when = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t));
    let rel = if t >= n {
        format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(t - n))
        )
    } else {
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(n - t))
        )
    };
    Some(format!("  {label:<4} {when} ({rel})"))
}

/// Decodes a token without trusting it: header, claims, times.
pub fn describe(token: &str) -> anyhow::Result<String> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        bail!(
            "not a JWT: {} dot-separated parts, a JWT has 3",
            parts.len()
        );
    }
    let header = decode_part(parts[0], "header")?;
    let claims = decode_part(parts[1], "payload")?;
    let mut out = String::new();
    out.push_str("header (not verified):\n");
    out.push_str(&indent(&serde_json::to_string_pretty(&header)?));
    out.push_str("claims (not verified):\n");
    out.push_str(&indent(&serde_json::to_string_pretty(&claims)?));
    let n = now();
    let times: Vec<String> = ["iat", "nbf", "exp"]
        .iter()
        .filter_map(|k| describe_time(k, claims.get(*k), n))
        .collect();
    if !times.is_empty() {
        out.push_str("times:\n");
        for t in times {
            out.push_str(&t);
            out.push('\n');
        }
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
        if (exp as u64) <= n {
            out.push_str(&format!(
                "  => expired {} ago\n",
                humantime::format_duration(Duration::from_secs(n - exp as u64))
            ));
        }
    }
    Ok(out)
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// Explains what `route` of the config at `config` does with `token`: every
/// connector of its steps that decides offline (see
/// [`gatehouse_connectors::Capabilities`]) is run for real (keys fetched as
/// at start), each member of an any-of group with its own answer.
/// Returns the report and whether the route would let the request through.
pub async fn explain(
    token: &str,
    config: &Path,
    route: &str,
    registry: &Registry,
) -> anyhow::Result<(String, bool)> {
    let metrics = crate::metrics::Metrics::new()?;
    let (snapshot, _) = crate::reload::initial_load(config, registry, &metrics)
        .await
        .map_err(|e| anyhow!("{}: configuration refused:\n{e}", config.display()))?;
    let Some(idx) = snapshot.config.routes.iter().position(|r| r.name == route) else {
        let known: Vec<&str> = snapshot
            .config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        bail!("no route named \"{route}\" (known: {})", known.join(", "));
    };
    let rc = &snapshot.config.routes[idx];
    let compiled = &snapshot.routes[idx];
    let mut out = format!(
        "route \"{}\" ({}{} -> {}):\n",
        rc.name,
        rc.host.as_deref().unwrap_or(""),
        rc.path_prefix,
        rc.upstream
    );
    if compiled.chain.is_empty() {
        out.push_str("  public route: no connector checks the token\n");
        return Ok((out, true));
    }
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .context("the token is not a valid header value")?,
    );
    let uri: http::Uri = rc
        .path_prefix
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let method = rc
        .methods
        .as_ref()
        .and_then(|m| m.first())
        .and_then(|m| m.parse().ok())
        .unwrap_or(http::Method::GET);
    let view = RequestView {
        method: &method,
        uri: &uri,
        headers: &headers,
        client: None,
        request_id: "inspect",
    };
    let mut unknown = Vec::new();
    for (i, (step, cfg)) in compiled.chain.iter().zip(&rc.connectors).enumerate() {
        let group = step.members.len() > 1;
        out.push_str(&format!("  {}. {cfg}\n", i + 1));
        let mut best: Option<(&str, Denial)> = None;
        let mut allowed = false;
        for c in &step.members {
            let label = format!("     {} ({})", c.name(), c.kind());
            let offline = registry
                .capabilities(c.kind())
                .is_some_and(|k| k.decides_offline);
            if !offline {
                out.push_str(&format!(
                    "{label}: not evaluated offline (it calls the identity provider)\n"
                ));
                unknown.push(c.name().to_string());
                continue;
            }
            let verdict = match group.then(|| c.precheck(&view)).flatten() {
                Some(d) => Verdict::Deny(d),
                None => c.check(&view).await,
            };
            match verdict {
                Verdict::Allow(edits) => {
                    out.push_str(&format!("{label}: ACCEPTED\n"));
                    for (h, v) in &edits.set {
                        out.push_str(&format!(
                            "       sets {h}: {}\n",
                            String::from_utf8_lossy(v.as_bytes())
                        ));
                    }
                    for h in &edits.remove {
                        out.push_str(&format!("       removes {h}\n"));
                    }
                    allowed = true;
                    break;
                }
                Verdict::Deny(d) => {
                    out.push_str(&format!(
                        "{label}: REJECTED: {} [reason {}, status {}]\n",
                        d.failure.description,
                        d.reason(),
                        d.rejection.status.as_u16()
                    ));
                    if best.as_ref().is_none_or(|(_, b)| d.outranks(b)) {
                        best = Some((c.name(), d));
                    }
                }
            }
        }
        if allowed {
            continue;
        }
        match best {
            Some((who, d)) if unknown.is_empty() => {
                if group {
                    out.push_str(&format!(
                        "  => no member allows; the most specific refusal answers: {who}'s {}\n",
                        d.reason()
                    ));
                }
                out.push_str(&format!(
                    "  => the route answers {}\n",
                    d.rejection.status.as_u16()
                ));
                return Ok((out, false));
            }
            _ => {}
        }
    }
    if !unknown.is_empty() {
        out.push_str(&format!(
            "  => the route lets the request through if {} allow(s) it\n",
            unknown.join(", ")
        ));
        return Ok((out, true));
    }
    out.push_str("  => the route lets the request through\n");
    Ok((out, true))
}

/// A JWKS for PEM keys (public or private; only public members are output).
/// `kids[i]` names key `i`; without one, the RFC 7638 thumbprint is the `kid`.
pub fn jwks_from_pem(
    files: &[PathBuf],
    kids: &[String],
    rsa_alg: Algorithm,
) -> anyhow::Result<String> {
    let mut keys = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let text = String::from_utf8_lossy(&pem);
        let private = text.contains("PRIVATE KEY");
        let from_private = |alg: Algorithm,
                            k: jsonwebtoken::errors::Result<EncodingKey>|
         -> Option<Jwk> { Jwk::from_encoding_key(&k.ok()?, alg).ok() };
        let jwk = if private {
            from_private(rsa_alg, EncodingKey::from_rsa_pem(&pem))
                .or_else(|| from_private(Algorithm::ES256, EncodingKey::from_ec_pem(&pem)))
                .or_else(|| from_private(Algorithm::ES384, EncodingKey::from_ec_pem(&pem)))
                .or_else(|| from_private(Algorithm::EdDSA, EncodingKey::from_ed_pem(&pem)))
        } else {
            DecodingKey::from_rsa_pem(&pem)
                .ok()
                .and_then(|k| Jwk::from_decoding_key(&k, Some(rsa_alg)).ok())
                .or_else(|| {
                    DecodingKey::from_ec_pem(&pem)
                        .ok()
                        .and_then(|k| Jwk::from_decoding_key(&k, None).ok())
                })
                .or_else(|| {
                    DecodingKey::from_ed_pem(&pem)
                        .ok()
                        .and_then(|k| Jwk::from_decoding_key(&k, Some(Algorithm::EdDSA)).ok())
                })
        };
        let mut jwk = jwk.ok_or_else(|| {
            anyhow!(
                "{}: not an RSA, EC (P-256/P-384) or Ed25519 key in PEM form",
                f.display()
            )
        })?;
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => rsa_alg,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                Algorithm::ES384
            }
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            _ => bail!("{}: unsupported key", f.display()),
        };
        let kid = match kids.get(i) {
            Some(k) => k.clone(),
            None => jwk
                .thumbprint(ThumbprintHash::SHA256)
                .context("thumbprint")?,
        };
        jwk.common.key_id = Some(kid);
        let mut v = serde_json::to_value(&jwk)?;
        if let Some(o) = v.as_object_mut() {
            o.retain(|_, val| !val.is_null());
            o.insert("use".into(), json!("sig"));
            o.insert("alg".into(), json!(format!("{alg:?}")));
        }
        keys.push(v);
    }
    Ok(serde_json::to_string_pretty(&json!({ "keys": keys }))?)
}
