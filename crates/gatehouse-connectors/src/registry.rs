//! Building connectors from their config sections.

use crate::Connector;
use async_trait::async_trait;
use gatehouse_config::{ConfigError, ConfigErrors, ConnectorConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything a factory gets to build one connector instance.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Instance name (`[connectors.NAME]`).
    pub name: String,
    /// Key path of the section, for errors (`connectors.NAME`).
    pub path: String,
    /// The section without `kind`; read it with
    /// [`gatehouse_config::deserialize_section`].
    pub settings: toml::Table,
    /// Shared Prometheus registry for the connector's own metric families.
    pub metrics: prometheus::Registry,
    /// The configuration's shared caches (`[caches.NAME]`), for sections
    /// naming one with `shared_cache`.
    pub shared_caches: crate::shared::SharedCaches,
}

/// What a kind can do, for tools and the proxy (which never name a kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Decides from the request and locally held material alone (keys it
    /// fetched ahead of time), without a network call per token: `token
    /// inspect --route` can run it offline.
    pub decides_offline: bool,
}

/// Builds connectors of one kind.
#[async_trait]
pub trait ConnectorFactory: Send + Sync {
    /// The `kind` value this factory answers to.
    fn kind(&self) -> &'static str;

    /// Builds an instance, or explains with path-qualified errors (every
    /// one found, not only the first) why not.
    async fn build(&self, ctx: BuildContext) -> Result<Arc<dyn Connector>, ConfigErrors>;

    /// The files a section makes the connector read when it is built (key
    /// material such as `secret_file`), as written in the section (relative
    /// paths are relative to the working directory, like the reads). They are
    /// part of the connector's identity: a reload rebuilds the connector when
    /// one of them changed, and Gatehouse watches them. A section that does
    /// not deserialize names no files (its build reports the error).
    fn source_files(&self, _settings: &toml::Table) -> Vec<PathBuf> {
        Vec::new()
    }

    /// The shared cache (`[caches.NAME]`) a section of this kind uses, if
    /// any: a reload carries a connector over only with that same cache.
    fn shared_cache(&self, _settings: &toml::Table) -> Option<String> {
        None
    }

    /// What connectors of this kind can do (by default: nothing promised).
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            decides_offline: false,
        }
    }

    /// The JSON Schema of a section of this kind (without `kind`), added to
    /// `generator`'s definitions; usually `generator.subschema_for::<Settings>()`.
    /// By default: any table.
    fn settings_schema(&self, _generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object" })
    }
}

/// The connector kinds a Gatehouse binary knows.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
    cache_families: Arc<crate::outbound::LazyFamilies<crate::shared::Families>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The kinds shipped with Gatehouse.
    pub fn builtin() -> Self {
        let mut r = Self::empty();
        r.register(Arc::new(crate::jwt::JwtFactory::default()));
        r.register(Arc::new(crate::userinfo::UserinfoFactory::default()));
        r.register(Arc::new(crate::apikey::ApiKeyFactory::default()));
        r.register(Arc::new(
            crate::introspection::IntrospectionFactory::default(),
        ));
        r
    }

    /// Adds (or replaces) a kind.
    pub fn register(&mut self, factory: Arc<dyn ConnectorFactory>) -> &mut Self {
        self.kinds.insert(factory.kind(), factory);
        self
    }

    /// The known kinds, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// The capabilities of `kind` (`None` for an unknown kind).
    pub fn capabilities(&self, kind: &str) -> Option<Capabilities> {
        self.kinds.get(kind).map(|f| f.capabilities())
    }

    /// Every kind with the schema of its settings (see
    /// [`ConnectorFactory::settings_schema`]), sorted by kind.
    pub fn settings_schemas(
        &self,
        generator: &mut schemars::SchemaGenerator,
    ) -> Vec<(&'static str, schemars::Schema)> {
        self.kinds
            .iter()
            .map(|(k, f)| (*k, f.settings_schema(generator)))
            .collect()
    }

    /// The files the section `cfg` makes its connector read (see
    /// [`ConnectorFactory::source_files`]); none for an unknown kind.
    pub fn source_files(&self, cfg: &ConnectorConfig) -> Vec<PathBuf> {
        self.kinds
            .get(cfg.kind.as_str())
            .map(|f| f.source_files(&cfg.settings))
            .unwrap_or_default()
    }

    /// The shared cache a connector section uses (asked of its kind).
    pub fn shared_cache_of(&self, cfg: &ConnectorConfig) -> Option<String> {
        self.kinds
            .get(cfg.kind.as_str())
            .and_then(|f| f.shared_cache(&cfg.settings))
    }

    /// Builds the shared cache `name` (`[caches.NAME]`), registering the
    /// shared-cache metric families in `metrics` the first time.
    pub fn build_cache(
        &self,
        name: &str,
        cfg: &gatehouse_config::CacheConfig,
        metrics: &prometheus::Registry,
    ) -> Result<Arc<crate::shared::SharedCache>, ConfigErrors> {
        let families = self.cache_families.get(&format!("caches.{name}"), || {
            crate::shared::Families::new(metrics)
        })?;
        crate::shared::SharedCache::build(name, cfg, &families).map(Arc::new)
    }

    /// Builds the connector `name` from its section.
    pub async fn build(
        &self,
        name: &str,
        cfg: &ConnectorConfig,
        metrics: &prometheus::Registry,
        shared_caches: &crate::shared::SharedCaches,
    ) -> Result<Arc<dyn Connector>, ConfigErrors> {
        let path = format!("connectors.{name}");
        let Some(factory) = self.kinds.get(cfg.kind.as_str()) else {
            let known = self.kinds();
            return Err(ConfigErrors::from(ConfigError::new(
                format!("{path}.kind"),
                format!(
                    "unknown connector kind \"{}\" (known: {})",
                    cfg.kind,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )));
        };
        factory
            .build(BuildContext {
                name: name.to_string(),
                path,
                settings: cfg.settings.clone(),
                metrics: metrics.clone(),
                shared_caches: shared_caches.clone(),
            })
            .await
    }
}
