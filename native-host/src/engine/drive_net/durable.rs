//! Group commit for fragments members hand this node: each is written
//! without a sync, then waits for one `syncfs` that began after its write
//! ended, which many writes share. A member deletes its copy once this
//! node answers `Stored`, so the answer waits until the fragment is
//! durable; one sync for a whole window of puts instead of a file and a
//! directory fsync for each.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::drive::DriveError;

#[derive(Default)]
pub struct GroupSync {
    /// Writes finished so far (a write takes its number once it is done).
    written: AtomicU64,
    /// Every write numbered up to this is durable. Held while syncing, so
    /// one sync runs at a time and the writes that wait for it queue here.
    synced: Mutex<u64>,
}

impl GroupSync {
    /// Returns once a write that has just finished is durable, running
    /// `sync` (which must make every finished write durable) unless a sync
    /// that began after this write has already done so.
    pub async fn durable<F>(&self, sync: impl FnOnce() -> F) -> Result<(), DriveError>
    where
        F: std::future::Future<Output = Result<(), DriveError>>,
    {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock().await;
        if *synced >= mine {
            return Ok(());
        }
        // Every write numbered up to here ended before this sync begins.
        let upto = self.written.load(Ordering::SeqCst);
        sync().await?;
        *synced = upto;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writes_share_a_sync_and_none_returns_before_one_that_began_after_it() {
        let group = Arc::new(GroupSync::default());
        let syncs = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (group, syncs) = (group.clone(), syncs.clone());
                tokio::spawn(async move {
                    let before = syncs.load(Ordering::SeqCst);
                    group
                        .durable(|| async {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            Ok(())
                        })
                        .await
                        .unwrap();
                    // Some sync began after this write was numbered.
                    assert!(syncs.load(Ordering::SeqCst) > before);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let count = syncs.load(Ordering::SeqCst);
        assert!((1..=64).contains(&count), "{count} syncs for 64 writes");
    }
}
