//! Loading and hot-reloading the configuration: `SIGHUP` or a change of the
//! file (directory watch, so editor renames and Kubernetes ConfigMap symlink
//! swaps are seen). Read → parse → validate → compile → one atomic swap; any
//! failure leaves the serving snapshot untouched.

use crate::snapshot::{compile, Snapshot};
use crate::state::State;
use gatehouse_config::{Config, ConfigError, ConfigErrors};
use gatehouse_connectors::Registry;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, Mutex};

/// Quiet time after the last file event before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

fn read_bytes(path: &Path) -> Result<Vec<u8>, ConfigErrors> {
    Ok(std::fs::read(path)
        .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?)
}

fn parse_config(path: &Path, bytes: &[u8]) -> Result<Config, ConfigErrors> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ConfigError::new("", format!("{} is not UTF-8", path.display())))?;
    Config::from_toml_str(text)
}

/// Reads and parses the file, with the file name in file-level errors.
pub fn read_config(path: &Path) -> Result<(Config, Vec<u8>), ConfigErrors> {
    let bytes = read_bytes(path)?;
    Ok((parse_config(path, &bytes)?, bytes))
}

/// True when a directory event may concern the config file: the file
/// itself, or a Kubernetes ConfigMap's `..data` / `..2024_…` entries.
fn concerns(ev: &notify::Event, file_name: Option<&std::ffi::OsStr>) -> bool {
    ev.paths.is_empty()
        || ev.paths.iter().any(|p| {
            let name = p.file_name();
            name == file_name
                || name
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(".."))
        })
}

/// Owns reloading; one reload runs at a time.
pub struct Reloader {
    path: PathBuf,
    registry: Registry,
    state: Arc<State>,
    /// Content of the last file version tried (applied or refused), so an
    /// unchanged file is not reloaded again on unrelated events.
    last_bytes: Mutex<Vec<u8>>,
}

impl Reloader {
    /// A reloader for the file at `path` whose current content is `bytes`.
    pub fn new(path: PathBuf, registry: Registry, state: Arc<State>, bytes: Vec<u8>) -> Self {
        Self {
            path,
            registry,
            state,
            last_bytes: Mutex::new(bytes),
        }
    }

    /// Reloads now. With `only_if_changed`, an unchanged file is a no-op.
    pub async fn reload(
        &self,
        trigger: &str,
        only_if_changed: bool,
    ) -> Result<Option<u64>, ConfigErrors> {
        let mut last = self.last_bytes.lock().await;
        let metrics = &self.state.metrics;
        let result = async {
            let bytes = read_bytes(&self.path)?;
            if only_if_changed && bytes == *last {
                return Ok(None);
            }
            *last = bytes.clone();
            let config = parse_config(&self.path, &bytes)?;
            let previous = self.state.current();
            if previous.config.server.listen != config.server.listen
                || previous.config.server.admin_listen != config.server.admin_listen
                || previous.config.server.threads != config.server.threads
            {
                tracing::warn!(
                    "server.listen, server.admin_listen and server.threads changes take effect only after a restart; the running listeners are kept"
                );
            }
            let generation = previous.generation + 1;
            let next = compile(config, &self.registry, metrics, Some(&previous), generation).await?;
            Ok::<_, ConfigErrors>(Some(next))
        }
        .await;
        match result {
            Ok(None) => Ok(None),
            Ok(Some(next)) => {
                let generation = next.generation;
                let previous = self.state.current();
                let reused = next
                    .connectors
                    .iter()
                    .filter(|(name, b)| {
                        previous
                            .connectors
                            .get(*name)
                            .is_some_and(|p| Arc::ptr_eq(&p.connector, &b.connector))
                    })
                    .count();
                let total = next.connectors.len();
                // Counted before the swap publishes the new generation, so whoever
                // sees the generation also sees the reload counted.
                metrics.reloads.with_label_values(&["success"]).inc();
                metrics.last_reload_success.set(unix_now());
                self.state.swap(next);
                tracing::info!(
                    trigger,
                    generation,
                    connectors_kept = reused,
                    connectors_total = total,
                    "configuration reloaded"
                );
                Ok(Some(generation))
            }
            Err(errs) => {
                metrics.reloads.with_label_values(&["failure"]).inc();
                for e in errs.iter() {
                    tracing::error!(trigger, file = %self.path.display(), "configuration reload refused, still serving the previous one: {e}");
                }
                Err(errs)
            }
        }
    }

    /// Reloads on every `SIGHUP`, forever.
    pub async fn watch_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading configuration");
            let _ = self.reload("sighup", false).await;
        }
    }

    /// Watches the config file's directory and reloads when the file's
    /// content changes (debounced). Returns the watcher, which must be kept.
    pub fn watch_file(self: Arc<Self>) -> notify::Result<notify::RecommendedWatcher> {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let file_name = self.path.file_name().map(|f| f.to_os_string());
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if ev.kind.is_access() || !concerns(&ev, file_name.as_deref()) {
                    return;
                }
                // Any change in the directory may be our file (ConfigMaps swap a
                // `..data` symlink); the content comparison filters the rest.
                let _ = tx.try_send(());
            }
        })?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let me = self.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Debounce: wait until events stop for DEBOUNCE.
                loop {
                    match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let _ = me.reload("file_change", true).await;
            }
        });
        Ok(watcher)
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Initial load: read, parse, validate, compile (generation 1).
pub async fn initial_load(
    path: &Path,
    registry: &Registry,
    state_metrics: &crate::metrics::Metrics,
) -> Result<(Snapshot, Vec<u8>), ConfigErrors> {
    let (config, bytes) = read_config(path)?;
    let snap = compile(config, registry, state_metrics, None, 1).await?;
    state_metrics.reloads.with_label_values(&["success"]).inc();
    state_metrics.last_reload_success.set(unix_now());
    Ok((snap, bytes))
}
