//! Token tooling for API developers: mint test tokens, inspect a token and
//! explain what a route would do with it, and build a JWKS from PEM keys.

use anyhow::{anyhow, bail, Context};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P521_SHA512_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gatehouse_connectors::jwt::es512::{pem_block, P521Key};
use gatehouse_connectors::jwt::Alg;
use gatehouse_connectors::{ChainOutcome, Registry, RequestView, Said};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `token mint` signs.
#[derive(Debug, Clone)]
pub struct MintOptions {
    /// Algorithm.
    pub alg: Alg,
    /// Private key PEM file (RS*, PS*, ES*, EdDSA; for ES512 a P-521 key, PKCS#8
    /// or SEC1 `EC PRIVATE KEY`).
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
    /// Lifetime in seconds (see [`parse_lifetime`]): `exp` = now + this.
    /// Negative for a token that has already expired; `iat` and `nbf` are
    /// min(now, `exp`), so `iat` ≤ `exp` holds either way.
    pub exp: i64,
    /// Extra claims `name=value` (value parsed as JSON when it is valid JSON).
    pub claims: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses a token lifetime for `token mint --exp`: a duration (`"15m"`,
/// `"1h 30m"`), or a negative one (`"-5m"`) for a token that expired that
/// long ago. Whole seconds.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (negative, span) = match t.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = humantime::parse_duration(span).map_err(|e| format!("\"{text}\": {e}"))?;
    let secs = i64::try_from(d.as_secs()).map_err(|_| format!("\"{text}\" is too long"))?;
    Ok(if negative { -secs } else { secs })
}

/// What signs: a `jsonwebtoken` key, or a P-521 key pair for ES512.
enum Signer {
    Jwt(EncodingKey, Algorithm),
    P521(EcdsaKeyPair),
}

/// A P-521 private key for ES512 from PEM: PKCS#8 (`PRIVATE KEY`) or SEC1
/// (`EC PRIVATE KEY`).
fn p521_private_key(pem: &[u8]) -> Option<EcdsaKeyPair> {
    let text = std::str::from_utf8(pem).ok()?;
    if let Some(der) = pem_block(text, "PRIVATE KEY") {
        return EcdsaKeyPair::from_pkcs8(&ECDSA_P521_SHA512_FIXED_SIGNING, &der).ok();
    }
    let der = pem_block(text, "EC PRIVATE KEY")?;
    EcdsaKeyPair::from_private_key_der(&ECDSA_P521_SHA512_FIXED_SIGNING, &der).ok()
}

fn signer(o: &MintOptions) -> anyhow::Result<Signer> {
    Ok(match (&o.key, &o.secret) {
        (Some(path), None) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let not_a_key = || format!("{} is not a private key for {}", path.display(), o.alg);
            let Some(alg) = o.alg.jsonwebtoken() else {
                // ES512: jsonwebtoken has none; aws-lc-rs signs.
                let pair = p521_private_key(&pem).with_context(|| {
                    format!(
                        "{} (ES512 needs a P-521 key: PKCS#8 or SEC1 PEM)",
                        not_a_key()
                    )
                })?;
                return Ok(Signer::P521(pair));
            };
            let key = match alg {
                Algorithm::ES256 | Algorithm::ES384 if p521_private_key(&pem).is_some() => {
                    bail!(
                        "{} is a P-521 key: it signs ES512 (--alg ES512)",
                        path.display()
                    )
                }
                Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                    bail!("{} signs with --secret, not --key", o.alg)
                }
                _ => EncodingKey::from_rsa_pem(&pem),
            }
            .with_context(not_a_key)?;
            Signer::Jwt(key, alg)
        }
        (None, Some(secret)) => match o.alg.jsonwebtoken() {
            Some(alg @ (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)) => {
                Signer::Jwt(EncodingKey::from_secret(secret.as_bytes()), alg)
            }
            _ => bail!("--secret only signs HS256/HS384/HS512"),
        },
        _ => bail!("give exactly one of --key (PEM private key) or --secret"),
    })
}

impl Signer {
    fn sign(&self, kid: Option<&str>, claims: &Value) -> anyhow::Result<String> {
        match self {
            Signer::Jwt(key, alg) => {
                let mut header = Header::new(*alg);
                header.typ = Some("JWT".into());
                header.kid = kid.map(str::to_string);
                jsonwebtoken::encode(&header, claims, key).context("signing")
            }
            Signer::P521(pair) => {
                let mut header = json!({"typ": "JWT", "alg": "ES512"});
                if let Some(k) = kid {
                    header["kid"] = json!(k);
                }
                let message = format!(
                    "{}.{}",
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
                );
                let sig = pair
                    .sign(&SystemRandom::new(), message.as_bytes())
                    .map_err(|_| anyhow!("signing with the P-521 key failed"))?;
                Ok(format!(
                    "{message}.{}",
                    URL_SAFE_NO_PAD.encode(sig.as_ref())
                ))
            }
        }
    }
}

/// Signs a token.
pub fn mint(o: &MintOptions) -> anyhow::Result<String> {
    Ok(mint_many(o, 1)?.remove(0))
}

/// Signs `count` tokens (the key parsed once); with `count > 1` each gets a
/// distinct `jti`.
pub fn mint_many(o: &MintOptions, count: usize) -> anyhow::Result<Vec<String>> {
    let key = signer(o)?;
    let n = i64::try_from(now()).context("the clock is beyond 2^63 seconds")?;
    let exp = n
        .checked_add(o.exp)
        .filter(|e| *e >= 0)
        .ok_or_else(|| anyhow!("--exp: the token's exp would be before 1970 or out of range"))?;
    // An expired token (negative lifetime) is still coherent: iat ≤ exp.
    let issued = n.min(exp);
    let mut claims = serde_json::Map::new();
    claims.insert("iat".into(), json!(issued));
    claims.insert("nbf".into(), json!(issued));
    claims.insert("exp".into(), json!(exp));
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
    let mut out = Vec::with_capacity(count.max(1));
    for i in 0..count.max(1) {
        if count > 1 {
            claims.insert("jti".into(), json!(format!("t{i}")));
        }
        out.push(key.sign(o.kid.as_deref(), &Value::Object(claims.clone()))?);
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
        peer_cert: None,
        verified: None,
    };
    // The proxy's own chain, with the members that call an identity
    // provider left out: the trace is what the route would do.
    let offline = |c: &dyn gatehouse_connectors::Connector| {
        registry
            .capabilities(c.kind())
            .is_some_and(|k| k.decides_offline)
    };
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut unknown: Vec<(usize, String)> = Vec::new();
    let outcome =
        gatehouse_connectors::run_chain_traced(&compiled.chain, &view, offline, |s, m, said, _| {
            let c = &compiled.chain[s].members[m];
            let label = format!("     {} ({})", c.name(), c.kind());
            let text = match said {
                Said::NotEvaluated => {
                    unknown.push((s, c.name().to_string()));
                    format!("{label}: not evaluated offline (it calls the identity provider)\n")
                }
                Said::Allowed(edits) => {
                    let mut t = format!("{label}: ACCEPTED\n");
                    for (h, v) in &edits.set {
                        t.push_str(&format!(
                            "       sets {h}: {}\n",
                            String::from_utf8_lossy(v.as_bytes())
                        ));
                    }
                    for h in &edits.remove {
                        t.push_str(&format!("       removes {h}\n"));
                    }
                    for q in &edits.remove_query_params {
                        t.push_str(&format!("       removes query parameter {q}\n"));
                    }
                    if let Some(doc) = &edits.verified {
                        // What the steps after this one can read (a key in a claim).
                        let members: Vec<&str> = doc
                            .as_object()
                            .map(|o| o.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        t.push_str(&format!(
                            "       hands on to later steps: {{{}}}\n",
                            members.join(", ")
                        ));
                    }
                    t
                }
                Said::Refused(d) => format!(
                    "{label}: REJECTED: {} [reason {}, status {}]\n",
                    d.failure.description,
                    d.reason(),
                    d.rejection.status.as_u16()
                ),
                Said::Skipped(f) => format!(
                    "{label}: REJECTED: {} [reason {}, status {}]\n",
                    f.description,
                    f.reason,
                    f.class.status().as_u16()
                ),
            };
            lines.push((s, text));
        })
        .await;
    let mut shown = None;
    for (s, text) in &lines {
        if shown != Some(*s) {
            out.push_str(&format!("  {}. {}\n", s + 1, rc.connectors[*s]));
            shown = Some(*s);
        }
        out.push_str(text);
    }
    match outcome {
        ChainOutcome::Deny {
            step,
            member,
            denial,
        } => {
            if compiled.chain[step].members.len() > 1 {
                out.push_str(&format!(
                    "  => no member allows; the most specific refusal answers: {}'s {}\n",
                    compiled.chain[step].members[member].name(),
                    denial.reason()
                ));
            }
            let before: Vec<&str> = unknown
                .iter()
                .filter(|(s, _)| *s < step)
                .map(|(_, n)| n.as_str())
                .collect();
            out.push_str(&format!(
                "  => the route answers {}{}\n",
                denial.rejection.status.as_u16(),
                if before.is_empty() {
                    String::new()
                } else {
                    format!(" (unless {} refuses first)", before.join(", "))
                }
            ));
            Ok((out, false))
        }
        ChainOutcome::Allow(_) if !unknown.is_empty() => {
            let names: Vec<&str> = unknown.iter().map(|(_, n)| n.as_str()).collect();
            out.push_str(&format!(
                "  => the route lets the request through if {} allow(s) it\n",
                names.join(", ")
            ));
            Ok((out, true))
        }
        ChainOutcome::Allow(_) => {
            out.push_str("  => the route lets the request through\n");
            Ok((out, true))
        }
    }
}

/// The JWK of a P-521 key in PEM form (public SPKI, or private PKCS#8/SEC1).
fn p521_jwk(pem: &[u8], private: bool) -> Option<Jwk> {
    let point = if private {
        p521_private_key(pem)?.public_key().as_ref().to_vec()
    } else {
        let der = pem_block(std::str::from_utf8(pem).ok()?, "PUBLIC KEY")?;
        P521Key::from_spki_der(&der).ok()?.point().to_vec()
    };
    let key = P521Key::from_point(&point).ok()?;
    let (x, y) = key.coordinates();
    Some(Jwk {
        common: CommonParameters::default(),
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P521,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }),
    })
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
        // P-521 first: jsonwebtoken's EC PEM readers do not check the curve.
        let jwk = if let Some(jwk) = p521_jwk(&pem, private) {
            Some(jwk)
        } else if private {
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
                "{}: not an RSA, EC (P-256/P-384/P-521) or Ed25519 key in PEM form",
                f.display()
            )
        })?;
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => format!("{rsa_alg:?}"),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Alg::ES256.to_string()
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
                Alg::ES384.to_string()
            }
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P521 => {
                Alg::ES512.to_string()
            }
            AlgorithmParameters::OctetKeyPair(_) => Alg::EdDSA.to_string(),
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
            o.insert("alg".into(), json!(alg));
        }
        keys.push(v);
    }
    Ok(serde_json::to_string_pretty(&json!({ "keys": keys }))?)
}
