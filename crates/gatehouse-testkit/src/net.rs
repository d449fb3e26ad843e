//! Networking helpers.

use std::net::{SocketAddr, TcpListener};

/// Returns a currently free loopback address (`127.0.0.1:PORT`).
///
/// A listener is bound on port 0, its port is read and the listener is
/// dropped, so there is a small window in which another process could grab
/// the port; good enough for tests.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("binding 127.0.0.1:0");
    listener.local_addr().expect("reading local address")
}
