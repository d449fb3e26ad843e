//! Before a TLS handshake: the connection cap, and the client's whole
//! `ClientHello` within `server.request_header_timeout`.
//!
//! Pingora hands a TLS connection to the application only after its
//! handshake, which it bounds by a fixed 60 s: a client that connects and
//! sends nothing, or trickles its `ClientHello`, held a descriptor, a task
//! and a rustls state for a minute, and handshakes were not counted by
//! `server.max_connections`. Pingora's pre-TLS hook runs on the plain TCP
//! stream right after accept: there the cap is checked (the connection is
//! dropped before any TLS work when the process is full) and the first TLS
//! record — the `ClientHello` — must arrive whole before the deadline. The
//! bytes read are put back for rustls.

use super::Connections;
use crate::state::State;
use async_trait::async_trait;
use gatehouse_config::limits::derived_max_connections;
use pingora::listeners::PreTlsProcess;
use pingora::prelude::*;
use pingora::protocols::l4::stream::Stream as L4Stream;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// TLS record header: type, version (2), length (2).
const RECORD_HEADER: usize = 5;
/// `handshake` record type.
const HANDSHAKE: u8 = 0x16;
/// Largest TLS 1.2/1.3 plaintext record (2^14) plus the allowed expansion.
const MAX_RECORD: usize = (1 << 14) + 2048;

/// The pre-TLS hook of every TLS listener.
pub struct TlsGate {
    state: Arc<State>,
    connections: Arc<Connections>,
    derived_cap: usize,
}

impl TlsGate {
    /// Shares the connection counter of the proxy's [`super::Gate`].
    pub fn new(state: Arc<State>, connections: Arc<Connections>, fd_limit: Option<u64>) -> Self {
        Self {
            state,
            connections,
            derived_cap: derived_max_connections(fd_limit.unwrap_or(1024)),
        }
    }

    /// Reads the first TLS record whole and puts it back.
    async fn client_hello(stream: &mut L4Stream) -> std::io::Result<()> {
        let mut head = [0u8; RECORD_HEADER];
        stream.read_exact(&mut head).await?;
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let mut record = head.to_vec();
        if head[0] == HANDSHAKE && len <= MAX_RECORD {
            record.resize(RECORD_HEADER + len, 0);
            stream.read_exact(&mut record[RECORD_HEADER..]).await?;
        }
        // Anything else is rustls's to refuse.
        stream.rewind(&record);
        Ok(())
    }
}

#[async_trait]
impl PreTlsProcess for TlsGate {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let (cap, deadline) = {
            let snapshot = self.state.current();
            let s = &snapshot.config.server;
            (
                s.max_connections.unwrap_or(self.derived_cap),
                s.request_header_timeout.get(),
            )
        };
        if self.connections.open() >= cap {
            self.connections.refused.inc();
            return Error::e_explain(
                ConnectRefused,
                "connection cap reached before the TLS handshake",
            );
        }
        match tokio::time::timeout(deadline, Self::client_hello(stream)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Error::e_because(ReadError, "before the TLS handshake", e),
            Err(_) => {
                self.state.metrics.heads_timed_out.inc();
                Error::e_explain(
                    ReadTimedout,
                    "no whole ClientHello within request_header_timeout",
                )
            }
        }
    }
}
