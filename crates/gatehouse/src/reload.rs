//! Loading and hot-reloading the configuration: `SIGHUP` or a change of the
//! file or of a file a connector reads (key material; directory watches, so
//! editor renames and Kubernetes ConfigMap/Secret symlink swaps are seen).
//! Read → parse → validate → compile → one atomic swap; any failure leaves
//! the serving snapshot untouched.

use crate::snapshot::{compile, Snapshot};
use crate::state::State;
use crate::watched_files::{self, FileStates};
use gatehouse_config::{Config, ConfigError, ConfigErrors};
use gatehouse_connectors::Registry;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
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
            name == file_name || is_dotdot(p)
        })
}

/// A Kubernetes ConfigMap/Secret volume entry (`..data`, `..2024_…`).
fn is_dotdot(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(".."))
}

/// True when a directory event may concern one of the key files `files`
/// (absolute paths, with symlink targets): the file itself, or a `..` entry
/// in its directory (a Secret volume swapping its `..data` symlink).
fn concerns_key_file(ev: &notify::Event, files: &BTreeSet<PathBuf>) -> bool {
    ev.paths.iter().any(|p| {
        files.contains(p) || (is_dotdot(p) && files.iter().any(|f| f.parent() == p.parent()))
    })
}

/// The directory holding `path`, absolute.
fn dir_of(path: &Path) -> PathBuf {
    let abs = watched_files::absolute(path);
    match abs.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => abs,
    }
}

/// What the last reload attempt read: the config bytes and the files its
/// connectors name, so unchanged content is not reloaded again on unrelated
/// events (and a refused version is not retried until something changes).
struct Tried {
    bytes: Vec<u8>,
    files: FileStates,
}

/// The file watcher and the directories it watches.
struct Watch {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

/// Owns reloading; one reload runs at a time.
pub struct Reloader {
    path: PathBuf,
    registry: Registry,
    state: Arc<State>,
    last: Mutex<Tried>,
    /// Key files to react to (read by the watcher's event callback).
    key_files: Arc<RwLock<BTreeSet<PathBuf>>>,
    /// Present once [`Reloader::watch_file`] succeeded.
    watch: std::sync::Mutex<Option<Watch>>,
}

impl Reloader {
    /// A reloader for the file at `path` whose current content is `bytes`
    /// (the content the serving snapshot was compiled from).
    pub fn new(path: PathBuf, registry: Registry, state: Arc<State>, bytes: Vec<u8>) -> Self {
        // The fingerprints the serving connectors were built with.
        let current = state.current();
        let files: FileStates = current
            .connectors
            .values()
            .flat_map(|b| b.files.clone())
            .chain(watched_files::fingerprint_all(
                &watched_files::server_files(&current.config),
            ))
            .collect();
        let watched = watched_files::watch_targets(&files.keys().cloned().collect());
        Self {
            path,
            registry,
            state,
            last: Mutex::new(Tried { bytes, files }),
            key_files: Arc::new(RwLock::new(watched)),
            watch: std::sync::Mutex::new(None),
        }
    }

    /// The key files now reacted to (absolute, with symlink targets).
    pub fn watched_key_files(&self) -> BTreeSet<PathBuf> {
        self.key_files.read().map(|f| f.clone()).unwrap_or_default()
    }

    /// Points the watch at `files` (the key files of the last config tried):
    /// watches their directories, drops directories no longer needed.
    fn rearm(&self, files: &FileStates) {
        let targets = watched_files::watch_targets(&files.keys().cloned().collect());
        let mut dirs: BTreeSet<PathBuf> = targets.iter().map(|f| dir_of(f)).collect();
        dirs.insert(dir_of(&self.path));
        if let Ok(mut k) = self.key_files.write() {
            *k = targets;
        }
        let Ok(mut guard) = self.watch.lock() else {
            return;
        };
        let Some(w) = guard.as_mut() else {
            return;
        };
        for gone in w.dirs.difference(&dirs).cloned().collect::<Vec<_>>() {
            let _ = w.watcher.unwatch(&gone);
            w.dirs.remove(&gone);
        }
        for new in dirs.difference(&w.dirs).cloned().collect::<Vec<_>>() {
            match w.watcher.watch(&new, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    w.dirs.insert(new);
                }
                // Not recorded, so the next reload tries again.
                Err(e) => tracing::warn!(
                    "cannot watch {} for key file changes ({e}); reload with SIGHUP",
                    new.display()
                ),
            }
        }
    }

    /// Reloads now. With `only_if_changed`, an unchanged file is a no-op.
    pub async fn reload(
        &self,
        trigger: &str,
        only_if_changed: bool,
    ) -> Result<Option<u64>, ConfigErrors> {
        let mut last = self.last.lock().await;
        let metrics = &self.state.metrics;
        let result = async {
            let bytes = read_bytes(&self.path)?;
            if only_if_changed && bytes == last.bytes && watched_files::unchanged(&last.files) {
                return Ok(None);
            }
            last.bytes = bytes.clone();
            let config = parse_config(&self.path, &bytes)?;
            // Fingerprinted before compiling: a file changing during the
            // compile is seen as changed by the next event.
            let files = watched_files::fingerprint_all(&watched_files::config_files(&self.registry, &config));
            self.rearm(&files);
            last.files = files;
            let previous = self.state.current();
            let (was, now) = (&previous.config.server, &config.server);
            let restart_only = [
                ("listen", was.listen != now.listen),
                ("admin_listen", was.admin_listen != now.admin_listen),
                ("threads", was.threads != now.threads),
                ("h2c", was.h2c != now.h2c),
                ("h2_idle_timeout", was.h2_idle_timeout != now.h2_idle_timeout),
                (
                    "h2_max_concurrent_streams",
                    was.h2_max_concurrent_streams != now.h2_max_concurrent_streams,
                ),
                (
                    "h2_max_send_buffer_bytes",
                    was.h2_max_send_buffer_bytes != now.h2_max_send_buffer_bytes,
                ),
                ("read_buffer_bytes", was.read_buffer_bytes != now.read_buffer_bytes),
            ];
            let changed: Vec<&str> = restart_only
                .iter()
                .filter(|(_, changed)| *changed)
                .map(|(key, _)| *key)
                .collect();
            if !changed.is_empty() {
                tracing::warn!(
                    "server.{} changed: read at start-up only, applied after a restart; the running listeners are kept",
                    changed.join(", server.")
                );
            }
            let settings = |c: &Config| {
                c.server
                    .tls
                    .iter()
                    .map(|t| (t.listen.clone(), t.min_version, t.client_ca_file.is_some()))
                    .collect::<Vec<_>>()
            };
            // TLS listeners take entry i of the file at every reload: a reload
            // that adds, removes or reorders entries, or adds or removes
            // client certificates, would hand a running listener another
            // entry's CA, client_auth or certificates. Refused; restart to apply.
            if settings(&previous.config) != settings(&config) {
                return Err(ConfigError::new(
                    "server.tls",
                    "the [[server.tls]] entries (their number, order, listen, min_version, and whether \
                     client_ca_file is set) change only with a restart; this reload would change them \
                     and is refused (certificates, client CA contents and client_auth reload)",
                )
                .into());
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
                next.start_background();
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

    /// Watches the config file's directory and the directories of the key
    /// files its connectors read, and reloads when the config's or a key
    /// file's content changes (debounced). The set of watched directories
    /// follows the key files of the last configuration tried.
    pub fn watch_file(self: Arc<Self>) -> notify::Result<()> {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let file_name = self.path.file_name().map(|f| f.to_os_string());
        let config_dir = dir_of(&self.path);
        let key_files = self.key_files.clone();
        let dir = config_dir.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if ev.kind.is_access() {
                    return;
                }
                let config = ev.paths.is_empty()
                    || (ev.paths.iter().any(|p| p.parent() == Some(dir.as_path()))
                        && concerns(&ev, file_name.as_deref()));
                let key = key_files
                    .read()
                    .is_ok_and(|files| concerns_key_file(&ev, &files));
                if !config && !key {
                    return;
                }
                // Any change may be ours (ConfigMaps swap a `..data`
                // symlink); the content comparison filters the rest.
                let _ = tx.try_send(());
            }
        })?;
        watcher.watch(&config_dir, RecursiveMode::NonRecursive)?;
        if let Ok(mut w) = self.watch.lock() {
            *w = Some(Watch {
                watcher,
                dirs: BTreeSet::from([config_dir]),
            });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let files = me.last.lock().await.files.clone();
            me.rearm(&files);
            // A change between the initial load and the watch start.
            let _ = me.reload("file_change", true).await;
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
        Ok(())
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
    snap.start_background();
    state_metrics.reloads.with_label_values(&["success"]).inc();
    state_metrics.last_reload_success.set(unix_now());
    Ok((snap, bytes))
}
