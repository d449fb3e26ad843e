//! Gatehouse: an authenticating edge proxy on Pingora.
//!
//! The binary (`gatehouse`) is a thin CLI over this library: [`server::run`]
//! loads a configuration, compiles it into a [`snapshot::Snapshot`], serves
//! it through [`proxy::GatehouseProxy`], and swaps in new snapshots on reload.
//! Connector kinds come from a [`gatehouse_connectors::Registry`], so tests
//! and embedders can add their own.

pub mod admin;
#[cfg(feature = "alloc-count")]
pub mod alloc_count;
pub mod canonical;
pub mod headers;
pub mod keyfiles;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod schema;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod tools;
pub mod upstream;

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
    let warnings = tls::expiry_warnings(&snapshot.tls, tls::unix_now())
        .into_iter()
        .chain(tls::client_certificate_warnings(&snapshot))
        .chain(binding_in_groups(&snapshot))
        .chain(unsealed);
    for w in warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    Ok(out)
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
