//! `oidc_userinfo` settings compiled into the rules a connector runs on,
//! with every error of the section reported at once.

use super::settings::{ErrorMetadataLocation, RegionMatch, UserinfoSettings};
use super::MAX_ENDPOINTS;
use crate::claims::ClaimPath;
use crate::inject::Injector;
use crate::kit::Problems;
use crate::limits::{self, at_most};
use crate::outbound::parse_url;
use crate::token::{header_folds_to, header_spellings};
use crate::{HeaderEdits, RequestView};
use gatehouse_config::{ConfigError, ConfigErrors};
use http::{HeaderName, HeaderValue, StatusCode};
use std::collections::HashMap;
use std::time::Duration;

/// One userinfo endpoint.
pub struct EndpointRule {
    /// Region code, or `default` (metric label).
    pub label: String,
    /// Where to call.
    pub url: reqwest::Url,
    /// Header map for answers from this endpoint.
    pub injector: Injector,
}

/// How the IdP's call is made.
pub struct CallRules {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// POST the token as the form field `access_token` too.
    pub post_body: bool,
    /// Timeout of one call.
    pub timeout: Duration,
    /// Largest answer read.
    pub max_body: usize,
    /// Bounds on concurrent and new calls.
    pub limits: crate::kit::limiter::Limits,
}

/// Where the IdP's error text is read when it rejects a token.
pub struct ErrorText {
    /// Header or body.
    pub location: Option<ErrorMetadataLocation>,
    /// `error_header_name`.
    pub header: Option<HeaderName>,
    /// `error_payload_location`.
    pub path: Option<ClaimPath>,
}

pub(super) use crate::kit::remote::CacheRules;

/// Everything an `oidc_userinfo` connector decides with.
pub struct Rules {
    /// Region header, when endpoints are regional.
    pub region_header: Option<HeaderName>,
    /// Regions compared ASCII case-insensitively.
    pub region_ci: bool,
    /// Region code (lower-cased when `region_ci`) → endpoint index.
    pub by_region: HashMap<String, usize>,
    /// Endpoint for an absent or unknown region.
    pub default: Option<usize>,
    /// The endpoints.
    pub endpoints: Vec<EndpointRule>,
    /// Every header an endpoint's map may set.
    pub injected: Vec<HeaderName>,
    /// Keep the token's carrier upstream.
    pub forward: bool,
    /// Relay the IdP's own status and challenge on a rejection.
    pub passthrough: bool,
    /// Where the IdP's error text is.
    pub error_text: ErrorText,
    /// Status when the IdP fails (RFC 6750 style).
    pub idp_error_status: StatusCode,
    /// The call.
    pub call: CallRules,
    /// The cache.
    pub cache: CacheRules,
}

fn key(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn header_name(path: &str, k: &str, h: &str) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(h.as_bytes())
        .map_err(|_| ConfigError::new(key(path, k), format!("\"{h}\" is not a valid header name")))
}

impl Rules {
    /// Compiles `s` (section `path`); `flat` is the common `inject_headers`.
    pub fn compile(
        path: &str,
        s: &UserinfoSettings,
        flat: &Injector,
    ) -> Result<Self, ConfigErrors> {
        let mut p = Problems::new();
        let method = match s.method.as_str() {
            "GET" => Some(reqwest::Method::GET),
            "POST" => Some(reqwest::Method::POST),
            other => {
                p.push(ConfigError::new(key(path, "method"), format!("must be exactly \"GET\" or \"POST\" (methods are case-sensitive), got \"{other}\"")));
                None
            }
        };
        if s.post_token_in_body && method.as_ref() != Some(&reqwest::Method::POST) {
            p.push(ConfigError::new(
                key(path, "post_token_in_body"),
                "only applies with method = \"POST\"",
            ));
        }
        let total = s.endpoints.len() + usize::from(s.default_endpoint.is_some());
        if total == 0 {
            p.push(ConfigError::new(
                path,
                "give `default_endpoint` and/or `endpoints`",
            ));
        }
        if total > MAX_ENDPOINTS {
            p.push(ConfigError::new(key(path, "endpoints"), format!("{total} userinfo endpoints (default included); at most {MAX_ENDPOINTS} are allowed")));
        }
        let region_header = match &s.region_header {
            Some(h) => p.check(header_name(path, "region_header", h)),
            None if !s.endpoints.is_empty() => {
                p.push(ConfigError::new(
                    key(path, "region_header"),
                    "required when `endpoints` are given",
                ));
                None
            }
            None => None,
        };
        let region_ci = s.region_match == RegionMatch::CaseInsensitive;
        for r in s.region_inject_headers.keys() {
            if !s.endpoints.contains_key(r) {
                p.push(ConfigError::new(
                    key(path, &format!("region_inject_headers.{r}")),
                    format!(
                        "no endpoint for region \"{r}\" (known: {})",
                        s.endpoints.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }

        let mut endpoints = Vec::new();
        let mut by_region = HashMap::new();
        let mut injected: Vec<HeaderName> = flat.headers().to_vec();
        // The region header is set only by this connector (the region it
        // used): a client's copy is removed on every route, so a route where
        // this connector did not allow never forwards an unverified region.
        if let Some(h) = &region_header {
            injected.push(h.clone());
        }
        for (region, url) in &s.endpoints {
            let at = format!("endpoints.{region}");
            if region.is_empty() || region == "default" {
                p.push(ConfigError::new(
                    key(path, &at),
                    "region codes must be non-empty and not \"default\"",
                ));
                continue;
            }
            if !region.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
                // The code is what the upstream receives in the region header.
                p.push(ConfigError::new(
                    key(path, &at),
                    "region codes are printable ASCII without spaces or commas",
                ));
                continue;
            }
            let url = p.check(parse_url(path, &at, url));
            let injector = match s.region_inject_headers.get(region) {
                Some(m) => p.check(Injector::compile(
                    &key(path, &format!("region_inject_headers.{region}")),
                    m,
                )),
                None => Some(flat.clone()),
            };
            let k = if region_ci {
                region.to_ascii_lowercase()
            } else {
                region.clone()
            };
            if by_region.insert(k, endpoints.len()).is_some() {
                p.push(ConfigError::new(
                    key(path, &at),
                    "two regions differ only in case, but region_match = \"case_insensitive\"",
                ));
            }
            let (Some(url), Some(injector)) = (url, injector) else {
                continue;
            };
            for h in injector.headers() {
                if !injected.contains(h) {
                    injected.push(h.clone());
                }
            }
            endpoints.push(EndpointRule {
                label: region.clone(),
                url,
                injector,
            });
        }
        let default = match &s.default_endpoint {
            Some(u) => p.check(parse_url(path, "default_endpoint", u)).map(|url| {
                endpoints.push(EndpointRule {
                    label: "default".into(),
                    url,
                    injector: flat.clone(),
                });
                endpoints.len() - 1
            }),
            None => None,
        };

        let timeout = p.check(at_most(
            path,
            "timeout",
            s.timeout.get(),
            limits::MAX_IDP_TIMEOUT,
        ));
        let bounded = |p: &mut Problems, k: &str, d: Duration| {
            p.check(at_most(path, k, d, limits::MAX_USERINFO_CACHE))
        };
        let ttl = bounded(&mut p, "cache_ttl", s.cache_ttl.get());
        let negative_ttl = bounded(&mut p, "negative_cache_ttl", s.negative_cache_ttl.get());
        let stale = s
            .stale_if_error
            .map(|d| bounded(&mut p, "stale_if_error", d.get()));

        let error_text = ErrorText {
            location: s.error_metadata_location,
            header: s
                .error_header_name
                .as_ref()
                .and_then(|h| p.check(header_name(path, "error_header_name", h))),
            path: match &s.error_payload_location {
                Some(jp) if !jp.is_empty() => {
                    p.check(ClaimPath::parse(&key(path, "error_payload_location"), jp))
                }
                _ => None,
            },
        };
        let idp_error_status = StatusCode::from_u16(s.status_on_idp_error)
            .ok()
            .filter(|c| c.is_client_error() || c.is_server_error());
        if idp_error_status.is_none() {
            p.push(ConfigError::new(
                key(path, "status_on_idp_error"),
                "must be a 4xx or 5xx status",
            ));
        }
        for e in crate::kit::remote::check_call_bounds(
            path,
            s.max_inflight,
            s.max_queued,
            s.max_response_bytes,
        ) {
            p.push(e);
        }
        let rules = (|| {
            Some(Rules {
                region_header,
                region_ci,
                by_region,
                default,
                endpoints,
                injected,
                forward: s.forward_authorization,
                passthrough: s.idp_error_passthrough,
                error_text,
                idp_error_status: idp_error_status?,
                call: CallRules {
                    method: method?,
                    post_body: s.post_token_in_body,
                    timeout: timeout?,
                    max_body: s.max_response_bytes,
                    limits: crate::kit::limiter::Limits {
                        max_inflight: s.max_inflight,
                        max_queued: s.max_queued,
                        max_per_second: s.max_calls_per_second,
                    },
                },
                cache: CacheRules {
                    size: s.cache_size,
                    negative_size: s
                        .negative_cache_size
                        .unwrap_or((s.cache_size / 10).max(u64::from(s.cache_size > 0))),
                    ttl: ttl?,
                    negative_ttl: negative_ttl?,
                    stale: match stale {
                        Some(d) => Some(d?),
                        None => None,
                    },
                },
            })
        })();
        p.finish(rules)
    }

    /// The endpoint for this request: its region's, else the default
    /// (`Ok(None)`: neither). `Err(())` when the region header comes more
    /// than once — in two headers, in two spellings (`X_Region` beside
    /// `X-Region`) or as a comma-separated list: which one the upstream
    /// would read is anyone's guess.
    #[allow(clippy::result_unit_err)]
    pub fn select(&self, req: &RequestView<'_>) -> Result<Option<usize>, ()> {
        let mut values = self.region_header.iter().flat_map(|h| {
            req.headers
                .iter()
                .filter(move |(n, _)| header_folds_to(n.as_str(), h.as_str()))
                .map(|(_, v)| v)
        });
        let first = values.next();
        if values.next().is_some() || first.is_some_and(|v| v.as_bytes().contains(&b',')) {
            return Err(());
        }
        let region = first
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let found = region.and_then(|r| {
            if self.region_ci {
                self.by_region.get(&r.to_ascii_lowercase()).copied()
            } else {
                self.by_region.get(r).copied()
            }
        });
        Ok(found.or(self.default))
    }

    /// The edits that make the upstream read the region that was used: every
    /// spelling of the region header the client sent removed, and, when a
    /// regional endpoint `idx` was used, the header set to its region code
    /// as written under `endpoints` (none for the default endpoint).
    pub fn region_edits(&self, idx: usize, req: &RequestView<'_>) -> HeaderEdits {
        let mut e = HeaderEdits::none();
        let Some(h) = &self.region_header else {
            return e;
        };
        e.remove = header_spellings(h, req.headers);
        if Some(idx) != self.default {
            if let Some(v) = self
                .endpoints
                .get(idx)
                .and_then(|ep| HeaderValue::from_str(&ep.label).ok())
            {
                e.set.push((h.clone(), v));
            }
        }
        e
    }
}
