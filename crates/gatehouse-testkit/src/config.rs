//! The head of a Gatehouse config for the end-to-end tests: the `[server]`
//! table and the `[upstreams.NAME]` sections, rendered as TOML text. The
//! caller appends its own connectors and routes.
//!
//! ```
//! use gatehouse_testkit::ConfigBuilder;
//!
//! let config = format!(
//!     "{}\n[[routes]]\nname = \"all\"\npath_prefix = \"/\"\nupstream = \"echo\"\n",
//!     ConfigBuilder::new()
//!         .grace_period("2s")
//!         .server_line("h2c = true")
//!         .upstream_with("echo", "127.0.0.1:9", "read_timeout = \"5s\"")
//!         .render()
//! );
//! assert!(config.starts_with("[server]\nlisten = [\"${LISTEN}\"]\n"));
//! assert!(config.contains("threads = 1\ngrace_period = \"2s\"\nh2c = true\n"));
//! assert!(config.contains("[upstreams.echo]\npeers = [\"127.0.0.1:9\"]\nread_timeout = \"5s\"\n"));
//! ```

use std::fmt::{Display, Write};

/// Renders the `[server]` table and `[upstreams.NAME]` sections of a test
/// config.
///
/// By default `listen = ["${LISTEN}"]` and `admin_listen = "${ADMIN}"`, the
/// placeholders [`Gatehouse::start`](crate::Gatehouse::start) replaces with
/// free loopback addresses, and `threads = 1`. Raw lines (`h2c = true`,
/// `access_log = true`, limits …) go into the `[server]` table with
/// [`ConfigBuilder::server_line`]; whole tables that belong to the server
/// (`[[server.tls]]` …) with [`ConfigBuilder::server_section`].
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    listen: Option<String>,
    admin: String,
    threads: usize,
    grace_period: Option<String>,
    server_lines: Vec<String>,
    server_sections: Vec<String>,
    upstreams: Vec<Upstream>,
}

/// One `[upstreams.NAME]` section.
#[derive(Debug, Clone)]
struct Upstream {
    name: String,
    peers: Vec<String>,
    extra: String,
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder::new()
    }
}

impl ConfigBuilder {
    /// `listen = ["${LISTEN}"]`, `admin_listen = "${ADMIN}"`, `threads = 1`,
    /// no upstream.
    pub fn new() -> ConfigBuilder {
        ConfigBuilder {
            listen: Some("${LISTEN}".to_owned()),
            admin: "${ADMIN}".to_owned(),
            threads: 1,
            grace_period: None,
            server_lines: Vec::new(),
            server_sections: Vec::new(),
            upstreams: Vec::new(),
        }
    }

    /// `listen = ["ADDR"]` instead of the `${LISTEN}` placeholder (a server
    /// started in-process, a config written for `gatehouse check`).
    pub fn listen(mut self, addr: impl Display) -> ConfigBuilder {
        self.listen = Some(addr.to_string());
        self
    }

    /// No plain `listen` key: the config only listens on TLS (its
    /// `[[server.tls]]` section, see [`ConfigBuilder::server_section`]).
    pub fn without_listen(mut self) -> ConfigBuilder {
        self.listen = None;
        self
    }

    /// `admin_listen = "ADDR"` instead of the `${ADMIN}` placeholder.
    pub fn admin(mut self, addr: impl Display) -> ConfigBuilder {
        self.admin = addr.to_string();
        self
    }

    /// `threads = N` (default 1).
    pub fn threads(mut self, threads: usize) -> ConfigBuilder {
        self.threads = threads;
        self
    }

    /// `grace_period = "PERIOD"` (unset by default), e.g. `"2s"`.
    pub fn grace_period(mut self, period: &str) -> ConfigBuilder {
        self.grace_period = Some(period.to_owned());
        self
    }

    /// A raw line (or several) of the `[server]` table, e.g. `h2c = true`.
    pub fn server_line(mut self, line: impl Into<String>) -> ConfigBuilder {
        self.server_lines.push(line.into());
        self
    }

    /// Raw TOML rendered right after the `[server]` table, before the
    /// upstreams: the tables that belong to the server, e.g. a
    /// `[[server.tls]]` listener.
    pub fn server_section(mut self, text: impl Into<String>) -> ConfigBuilder {
        self.server_sections.push(text.into());
        self
    }

    /// `[upstreams.NAME]` with `peers = ["PEER"]`.
    pub fn upstream(self, name: &str, peer: impl Display) -> ConfigBuilder {
        self.upstream_with(name, peer, "")
    }

    /// `[upstreams.NAME]` with `peers = ["PEER"]` and raw `extra` lines
    /// (timeouts, a `[upstreams.NAME.health_check]` table …).
    pub fn upstream_with(self, name: &str, peer: impl Display, extra: &str) -> ConfigBuilder {
        self.upstream_peers(name, &[peer], extra)
    }

    /// `[upstreams.NAME]` with several peers and raw `extra` lines.
    pub fn upstream_peers<P: Display>(
        mut self,
        name: &str,
        peers: &[P],
        extra: &str,
    ) -> ConfigBuilder {
        self.upstreams.push(Upstream {
            name: name.to_owned(),
            peers: peers.iter().map(ToString::to_string).collect(),
            extra: extra.to_owned(),
        });
        self
    }

    /// The TOML text: the `[server]` table, the server sections, then each
    /// upstream, each followed by an empty line.
    pub fn render(&self) -> String {
        let mut out = String::from("[server]\n");
        if let Some(listen) = &self.listen {
            push_line(&mut out, &format!("listen = [{}]", quoted(listen)));
        }
        push_line(&mut out, &format!("admin_listen = {}", quoted(&self.admin)));
        push_line(&mut out, &format!("threads = {}", self.threads));
        if let Some(period) = &self.grace_period {
            push_line(&mut out, &format!("grace_period = {}", quoted(period)));
        }
        for line in &self.server_lines {
            push_line(&mut out, line);
        }
        out.push('\n');
        for section in &self.server_sections {
            push_line(&mut out, section);
            out.push('\n');
        }
        for u in &self.upstreams {
            let peers: Vec<String> = u.peers.iter().map(|p| quoted(p)).collect();
            let _ = writeln!(out, "[upstreams.{}]", u.name);
            push_line(&mut out, &format!("peers = [{}]", peers.join(", ")));
            push_line(&mut out, &u.extra);
            out.push('\n');
        }
        out
    }
}

/// `text` as a TOML basic string.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Appends `text` (nothing if empty) and ends it with a newline.
fn push_line(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str(text);
    if !text.ends_with('\n') {
        out.push('\n');
    }
}
