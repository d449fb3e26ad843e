//! A counting global allocator for the allocation benchmark (`benches/allocations.sh`), compiled only
//! with the `alloc-count` feature and never part of a shipped build.
//!
//! It wraps the system allocator (so `valgrind --tool=dhat` sees every allocation of the same binary
//! and can say where it comes from) and counts calls and bytes; the admin listener appends the
//! counters to `/metrics`, and the benchmark divides their growth by the requests it sent. Counts of
//! calls do not depend on the allocator underneath: the default build's mimalloc receives the same
//! requests from Rust.

use std::io::Write;

#[global_allocator]
static GLOBAL: stats_alloc::StatsAlloc<std::alloc::System> = stats_alloc::StatsAlloc::system();

/// Appends the allocator's counters (since start) in Prometheus text format.
pub fn render(out: &mut Vec<u8>) {
    let s = GLOBAL.stats();
    let _ = write!(
        out,
        "# HELP gatehouse_allocations_total Heap allocations since start (alloc-count builds only).\n\
         # TYPE gatehouse_allocations_total counter\n\
         gatehouse_allocations_total {}\n\
         # HELP gatehouse_reallocations_total Heap reallocations since start (alloc-count builds only).\n\
         # TYPE gatehouse_reallocations_total counter\n\
         gatehouse_reallocations_total {}\n\
         # HELP gatehouse_allocated_bytes_total Bytes allocated since start, reallocations' growth included (alloc-count builds only).\n\
         # TYPE gatehouse_allocated_bytes_total counter\n\
         gatehouse_allocated_bytes_total {}\n",
        s.allocations,
        s.reallocations,
        s.bytes_allocated as i128 + s.bytes_reallocated.max(0) as i128,
    );
}
