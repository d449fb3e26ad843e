//! Gatehouse: an authenticating edge proxy on Pingora.
//!
//! The binary (`gatehouse`) is a thin CLI over this library: [`server::run`]
//! loads a configuration, compiles it into a [`snapshot::Snapshot`], serves
//! it through [`proxy::GatehouseProxy`], and swaps in new snapshots on reload.
//! Connector kinds come from a [`gatehouse_connectors::Registry`], so tests
//! and embedders can add their own. What a request means — its canonical
//! form, its route, the headers that reach the upstream, upgrade handshakes,
//! peer health and choice — is decided in [`gatehouse_http`]; the modules
//! here apply it to Pingora sessions.

pub mod admin;
#[cfg(feature = "alloc-count")]
pub mod alloc_count;
pub mod certs;
pub mod edge;
pub mod keytool;
pub mod limits;
pub mod meter;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod schema;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod tools;
pub mod upstream;
pub mod watched_files;

/// Checks a configuration file: parse, validate and compile (resolving
/// upstreams and building connectors), without serving. Returns the summary.
pub async fn check(
    path: &std::path::Path,
    registry: &gatehouse_connectors::Registry,
) -> Result<String, gatehouse_config::ConfigErrors> {
    let metrics = metrics::Metrics::new()
        .map_err(|e| gatehouse_config::ConfigError::new("", format!("metrics: {e}")))?;
    let (snapshot, _) = reload::initial_load(path, registry, &metrics).await?;
    let mut out = snapshot.summary();
    out.push_str(&group_carriers(&snapshot));
    let unsealed = snapshot
        .config
        .caches
        .iter()
        .filter(|(_, c)| c.encryption_key_file.is_none())
        .map(|(name, _)| {
            format!(
                "caches.{name} has no encryption_key_file: Redis holds identities in clear, and \
                 whoever can write to it (or intercept a redis:// connection) can make Gatehouse \
                 accept any identity for a token"
            )
        });
    let warnings = certs::expiry_warnings(&snapshot.tls, certs::unix_now())
        .into_iter()
        .chain(tls::client_certificate_warnings(&snapshot))
        .chain(binding_in_groups(&snapshot))
        .chain(connector_warnings(&snapshot))
        .chain(public_beside_protected(&snapshot.config))
        .chain(unsealed);
    for w in warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(out)
}

/// True when `inner` is `outer` or a path under it, on whole segments.
fn under_prefix(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// True when two routes' host patterns can match one request.
fn hosts_overlap(a: Option<&str>, b: Option<&str>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let covers = |pattern: &str, host: &str| {
        pattern == host
            || pattern
                .strip_prefix('*')
                .is_some_and(|suffix| host.ends_with(suffix))
    };
    covers(&a, &b) || covers(&b, &a)
}

/// Public routes that share an upstream with protected routes under their
/// prefix. Prefix routing cannot see how the application routes: a PHP
/// front controller serves `/index.php/api/x` as `/api/x`, Rails and older
/// Spring serve `/api.json` as `/api`, Express, Koa and ASP.NET Core serve
/// `/API/x` as `/api/x` — all of them public for Gatehouse.
fn public_beside_protected(config: &gatehouse_config::Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, public) in config.routes.iter().enumerate() {
        if !public.connectors.is_empty() {
            continue;
        }
        let shadowed: Vec<String> = config
            .routes
            .iter()
            .filter(|q| {
                !q.connectors.is_empty()
                    && q.upstream == public.upstream
                    && under_prefix(&public.path_prefix, &q.path_prefix)
                    && hosts_overlap(public.host.as_deref(), q.host.as_deref())
            })
            .map(|q| format!("\"{}\" ({})", q.name, q.path_prefix))
            .collect();
        if !shadowed.is_empty() {
            out.push(format!(
                "routes[{i}] (\"{}\", {}) is public and sends to upstream \"{}\", which also serves \
                 the protected {}: an application that routes by PATH_INFO (/index.php/…), format \
                 suffixes (….json) or case-insensitively (/API/…) can serve protected content on a \
                 path Gatehouse sends to the public route; protect the catch-all and list the public \
                 paths as their own routes (docs/security.md, \"Public routes beside protected ones\")",
                public.name,
                public.path_prefix,
                public.upstream,
                shadowed.join(", ")
            ));
        }
    }
    out
}

/// The carriers each any-of group reads: a token must be in one of them;
/// tokens in two are refused (`ambiguous_token`).
fn group_carriers(snapshot: &snapshot::Snapshot) -> String {
    let mut out = String::new();
    for (r, route) in snapshot.routes.iter().enumerate() {
        for (s, step) in route.chain.iter().enumerate() {
            if step.members.len() < 2 {
                continue;
            }
            let carriers: Vec<String> = step.carriers().iter().map(|c| c.to_string()).collect();
            out.push_str(&format!(
                "routes[{r}].connectors[{s}] ({:?}) reads the token from one of: {} \
                 (a token in two of them is refused with ambiguous_token)\n",
                step,
                carriers.join(", ")
            ));
        }
    }
    out
}

/// What each connector says about its own settings.
fn connector_warnings(snapshot: &snapshot::Snapshot) -> Vec<String> {
    snapshot
        .connectors
        .values()
        .flat_map(|b| b.connector.warnings())
        .collect()
}

/// Any-of groups that mix a member needing a client certificate (a
/// certificate-bound token) with one that does not: a bound token the first
/// refuses for want of its certificate may still pass the second.
fn binding_in_groups(snapshot: &snapshot::Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (r, route) in snapshot.config.routes.iter().enumerate() {
        for (s, step) in route.connectors.iter().enumerate() {
            let members = step.members();
            let needs = |n: &String| {
                snapshot
                    .connectors
                    .get(n)
                    .is_some_and(|b| b.connector.needs_client_certificate())
            };
            if members.len() > 1 && members.iter().any(needs) && !members.iter().all(needs) {
                out.push(format!(
                    "routes[{r}].connectors[{s}]: an any-of group mixes connectors that require \
                     certificate binding with ones that do not; a stolen bound token refused by the \
                     first may pass the second"
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn public_routes_beside_protected_ones_are_named() {
        let cfg = gatehouse_config::Config::from_toml_str(
            r#"
[server]
listen = ["127.0.0.1:1"]
[upstreams.up]
peers = ["127.0.0.1:2"]
[upstreams.other]
peers = ["127.0.0.1:3"]
[connectors.j]
kind = "jwt"
jwks = '{"keys":[]}'
[[routes]]
name = "public"
path_prefix = "/"
upstream = "up"
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "up"
connectors = ["j"]
[[routes]]
name = "docs"
path_prefix = "/docs"
upstream = "up"
[[routes]]
name = "elsewhere"
path_prefix = "/admin"
upstream = "other"
connectors = ["j"]
[[routes]]
name = "other-host"
host = "b.example"
path_prefix = "/x"
upstream = "up"
[[routes]]
name = "a-host"
host = "a.example"
path_prefix = "/x/y"
upstream = "up"
connectors = ["j"]
"#,
        )
        .unwrap();
        let w = public_beside_protected(&cfg);
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(w[0].starts_with("routes[0] (\"public\", /)"), "{}", w[0]);
        assert!(
            w[0].contains("\"api\" (/api)") && w[0].contains("\"a-host\""),
            "{}",
            w[0]
        );
        assert!(!w[0].contains("elsewhere"), "{}", w[0]);
        assert!(under_prefix("/", "/api"));
        assert!(under_prefix("/a", "/a/b") && under_prefix("/a", "/a"));
        assert!(!under_prefix("/a", "/ab"));
        assert!(hosts_overlap(Some("*.example"), Some("a.example")));
        assert!(!hosts_overlap(Some("a.example"), Some("b.example")));
    }
}
