//! A cap on the streams of one HTTP/2 connection that are proxied at once.
//!
//! Each proxied stream can hold about 0.5 MiB of response for a client that
//! stops reading (Pingora's pipeline of 64 KiB chunks between the upstream
//! reader and the client writer, plus the `h2` send buffer), and an
//! upstream connection. `h2_max_concurrent_streams` alone let one
//! connection hold 100 of them. With [`ProxiedStreams`] a stream takes a
//! place of its connection before Gatehouse opens its upstream request,
//! and keeps it until the stream ends; past the cap the stream waits for a
//! place (back-pressure: its request stays unread in the client's flow
//! control window), at most a bounded time, then it is refused.
//!
//! Pingora serves each HTTP/2 stream as its own session and gives the hooks
//! no connection object, but every stream of a connection shares the
//! connection's `Digest` (one `Arc`): its address identifies the connection
//! while any of its streams lives. Places are kept in a table keyed by it;
//! an entry is removed when no stream holds or waits for a place, so an
//! address reused by a later connection starts afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The places of every HTTP/2 connection with streams being proxied.
#[derive(Debug, Default)]
pub struct ProxiedStreams {
    table: Mutex<HashMap<usize, Arc<Semaphore>>>,
}

/// A place held by one proxied stream; given back when dropped.
#[derive(Debug)]
pub struct StreamPlace {
    permit: Option<OwnedSemaphorePermit>,
    key: usize,
    owner: Arc<ProxiedStreams>,
}

impl Drop for StreamPlace {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.owner.release(self.key);
    }
}

/// A stream's claim on its connection's entry while it takes a place.
struct Waiting<'a> {
    owner: &'a ProxiedStreams,
    key: usize,
    places: Option<Arc<Semaphore>>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        drop(self.places.take());
        self.owner.release(self.key);
    }
}

/// Why a stream got no place.
#[derive(Debug, PartialEq, Eq)]
pub enum NoPlace {
    /// Every place stayed taken for the whole wait.
    Timeout,
}

impl ProxiedStreams {
    /// A stream of the connection `key` takes a place, waiting at most
    /// `wait` while `cap` streams of it are proxied. `waited` is told when
    /// the stream had to wait.
    pub async fn take(
        self: &Arc<Self>,
        key: usize,
        cap: usize,
        wait: Duration,
        waited: impl FnOnce(),
    ) -> Result<StreamPlace, NoPlace> {
        let places = self
            .table()
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(cap)))
            .clone();
        // Counts as a waiter until the stream has its permit, gives up or
        // is cancelled (its client went away): the entry is not removed
        // under it, and is removed after it when nothing else needs it.
        let waiting = Waiting {
            owner: self,
            key,
            places: Some(places.clone()),
        };
        let place = |permit| StreamPlace {
            permit: Some(permit),
            key,
            owner: self.clone(),
        };
        let permit = match places.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) => {
                waited();
                match tokio::time::timeout(wait, places.acquire_owned()).await {
                    Ok(Ok(p)) => Ok(p),
                    // The semaphore is never closed.
                    Ok(Err(_)) | Err(_) => Err(NoPlace::Timeout),
                }
            }
        };
        drop(waiting);
        permit.map(place)
    }

    fn table(&self) -> MutexGuard<'_, HashMap<usize, Arc<Semaphore>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the entry of `key` once nothing holds or waits for it.
    fn release(&self, key: usize) {
        let mut table = self.table();
        if table.get(&key).is_some_and(|s| Arc::strong_count(s) == 1) {
            table.remove(&key);
        }
    }

    /// Connections with streams being proxied (or waiting) now.
    pub fn connections(&self) -> usize {
        self.table().len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_connection_gets_cap_places_and_waiters_get_freed_ones() {
        let streams = Arc::new(ProxiedStreams::default());
        let waits = AtomicUsize::new(0);
        let count = || {
            waits.fetch_add(1, Ordering::Relaxed);
        };
        let long = Duration::from_secs(30);
        let a = streams.take(1, 2, long, count).await.unwrap();
        let _b = streams.take(1, 2, long, count).await.unwrap();
        // Another connection has its own places.
        let other = streams.take(2, 2, long, count).await.unwrap();
        assert_eq!(waits.load(Ordering::Relaxed), 0);
        assert_eq!(streams.connections(), 2);
        // The third stream of connection 1 waits, and gets the place `a`
        // gives back.
        let third = {
            let streams = streams.clone();
            tokio::spawn(async move { streams.take(1, 2, long, || {}).await })
        };
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(a);
        let _third = third.await.unwrap().unwrap();
        // A waiter that is never served gives up after the wait.
        let refused = streams
            .take(1, 2, Duration::from_millis(20), count)
            .await
            .unwrap_err();
        assert_eq!(refused, NoPlace::Timeout);
        assert_eq!(waits.load(Ordering::Relaxed), 1);
        drop(other);
        assert_eq!(streams.connections(), 1);
    }

    #[tokio::test]
    async fn entries_leave_the_table_when_their_last_stream_ends() {
        let streams = Arc::new(ProxiedStreams::default());
        let wait = Duration::from_millis(10);
        let a = streams.take(7, 1, wait, || {}).await.unwrap();
        assert!(streams.take(7, 1, wait, || {}).await.is_err());
        assert_eq!(streams.connections(), 1);
        drop(a);
        assert_eq!(streams.connections(), 0);
        // A new connection at the same address starts with the new cap.
        let b = streams.take(7, 2, wait, || {}).await.unwrap();
        let c = streams.take(7, 2, wait, || {}).await.unwrap();
        drop((b, c));
        assert_eq!(streams.connections(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let streams = Arc::new(ProxiedStreams::default());
        let long = Duration::from_secs(30);
        let held = streams.take(9, 1, long, || {}).await.unwrap();
        let waiter = {
            let streams = streams.clone();
            tokio::spawn(async move { streams.take(9, 1, long, || {}).await.is_ok() })
        };
        tokio::task::yield_now().await;
        waiter.abort();
        assert!(waiter.await.unwrap_err().is_cancelled());
        drop(held);
        assert_eq!(streams.connections(), 0);
    }
}
