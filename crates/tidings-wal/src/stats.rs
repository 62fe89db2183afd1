//! Counters of the log, and their snapshot [`WalStats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the log has done since it was opened (and what it holds now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalStats {
    /// Appends made durable (one per [`Wal::append`](crate::Wal::append)).
    pub appends: u64,
    /// Events in those appends.
    pub appended_events: u64,
    /// Group commits: one write each (and one fsync under
    /// [`SyncMode::Fsync`](crate::SyncMode::Fsync)), for any number of appends.
    pub syncs: u64,
    /// Fsyncs of records: one per group commit under
    /// [`SyncMode::Fsync`](crate::SyncMode::Fsync), one per closed segment under
    /// [`SyncMode::Write`](crate::SyncMode::Write).
    pub fsyncs: u64,
    /// Appends refused because the log was over its byte budget.
    pub refused_full: u64,
    /// Appends refused because a write or fsync failed.
    pub failed: u64,
    /// Bytes of the segments on disk now (not yet retired).
    pub live_bytes: u64,
    /// Segments on disk now.
    pub live_segments: u64,
    /// Segments deleted because every event in them was settled.
    pub retired_segments: u64,
    /// Events read back from segments left by an earlier run.
    pub replayed_events: u64,
    /// Damaged regions skipped while replaying (torn tails, bad checksums,
    /// records that are not events).
    pub damaged_regions: u64,
    /// Bytes in those regions.
    pub damaged_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    appends: AtomicU64,
    appended_events: AtomicU64,
    syncs: AtomicU64,
    fsyncs: AtomicU64,
    refused_full: AtomicU64,
    failed: AtomicU64,
    live_bytes: AtomicU64,
    live_segments: AtomicU64,
    retired_segments: AtomicU64,
    replayed_events: AtomicU64,
    damaged_regions: AtomicU64,
    damaged_bytes: AtomicU64,
}

/// Shared counters; cloning shares them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters(Arc<Inner>);

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn live_bytes(&self) -> u64 {
        self.0.live_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn opened_segment(&self, bytes: u64) {
        add(&self.0.live_segments, 1);
        add(&self.0.live_bytes, bytes);
    }

    pub(crate) fn wrote(&self, bytes: u64) {
        add(&self.0.live_bytes, bytes);
    }

    pub(crate) fn synced(&self, appends: u64, events: u64) {
        add(&self.0.syncs, 1);
        add(&self.0.appends, appends);
        add(&self.0.appended_events, events);
    }

    pub(crate) fn fsynced(&self) {
        add(&self.0.fsyncs, 1);
    }

    pub(crate) fn refused_full(&self) {
        add(&self.0.refused_full, 1);
    }

    pub(crate) fn failed(&self, appends: u64) {
        add(&self.0.failed, appends);
    }

    pub(crate) fn retired(&self, bytes: u64) {
        self.0.live_segments.fetch_sub(1, Ordering::Relaxed);
        self.0.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
        add(&self.0.retired_segments, 1);
    }

    pub(crate) fn replayed(&self, events: u64) {
        add(&self.0.replayed_events, events);
    }

    pub(crate) fn damaged(&self, bytes: u64) {
        add(&self.0.damaged_regions, 1);
        add(&self.0.damaged_bytes, bytes);
    }

    pub(crate) fn snapshot(&self) -> WalStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let i = &self.0;
        WalStats {
            appends: load(&i.appends),
            appended_events: load(&i.appended_events),
            syncs: load(&i.syncs),
            fsyncs: load(&i.fsyncs),
            refused_full: load(&i.refused_full),
            failed: load(&i.failed),
            live_bytes: load(&i.live_bytes),
            live_segments: load(&i.live_segments),
            retired_segments: load(&i.retired_segments),
            replayed_events: load(&i.replayed_events),
            damaged_regions: load(&i.damaged_regions),
            damaged_bytes: load(&i.damaged_bytes),
        }
    }
}
