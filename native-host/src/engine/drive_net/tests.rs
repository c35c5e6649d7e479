//! Three nodes of one owner over an in-memory mesh: spreading, catching
//! up, restoring from others, and repair, each checked by the bytes and
//! fragments on every node's disk.

use std::sync::Arc;

use mailmesh_core::drive::{FragmentId, Manifest, NetworkKey};
use mailmesh_core::identity::{NodeId, NodeSecrets};
use mailmesh_core::peer::frame::Frame;
use tokio::sync::{broadcast, watch};

use super::DriveNet;
use crate::drive::Drive;
use crate::engine::standing::{Membership, Standing};
use crate::engine::testkit::{self, content};
use crate::home::NodeHome;
use crate::mesh::links::memory::MemoryMesh;

const HOUR_MS: u64 = 3_600_000;

struct Node {
    id: NodeId,
    net: Arc<DriveNet>,
    _home: tempfile::TempDir,
}

impl Node {
    fn holds(&self, id: &FragmentId) -> bool {
        self.net.drive().store().contains(id)
    }
}

struct Cluster {
    mesh: MemoryMesh,
    nodes: Vec<Node>,
}

/// `n` nodes of one network, ordered by node id (so `nodes[0]` is the one
/// that runs repairs).
fn cluster(n: u8) -> Cluster {
    cluster_with(n, testkit::settings(HOUR_MS))
}

fn cluster_with(n: u8, settings: crate::engine::drive_net::Settings) -> Cluster {
    let mesh = MemoryMesh::default();
    let mut ids: Vec<(NodeId, u8)> =
        (1..=n).map(|i| (NodeSecrets::from_seeds([i; 32], [i; 32]).node_id(), i)).collect();
    ids.sort();
    let membership =
        Membership { key: NetworkKey::from_bytes([7; 32]), members: ids.iter().map(|(id, _)| *id).collect() };
    // A receiver keeps the last value after its sender is gone.
    let standing =
        Standing { address: Some("owner@example.org".into()), network: Some(membership), mesh: Default::default() };
    let (_, watch) = watch::channel(standing);
    let nodes = ids
        .into_iter()
        .map(|(id, _)| {
            let home = tempfile::tempdir().expect("temp dir");
            let drive = Arc::new(Drive::open(&NodeHome::at(home.path())).expect("drive"));
            let net =
                DriveNet::new(id, drive, mesh.links(id), watch.clone(), broadcast::channel(16).0, settings.clone());
            let receiver = Arc::downgrade(&net);
            mesh.join(id, "owner@example.org", move |from, _member, frame| {
                let receiver = receiver.clone();
                Box::pin(async move {
                    if let (Some(net), Frame::Data { topic, payload }) = (receiver.upgrade(), frame) {
                        net.on_message(from, &topic, payload).await;
                    }
                })
            });
            Node { id, net, _home: home }
        })
        .collect();
    Cluster { mesh, nodes }
}

impl Cluster {
    /// Node `at` adds a file and spreads it; its id and manifest.
    async fn add_and_spread(&self, at: usize, bytes: &[u8]) -> (String, Manifest) {
        let node = &self.nodes[at];
        let key = NetworkKey::from_bytes([7; 32]);
        let file = node.net.drive().add_bytes(&key, "report.bin", "application/octet-stream", None, bytes, 1).unwrap();
        node.net.distribute(&file.id).await;
        self.mesh.settled().await;
        let (_, manifest) = node.net.drive().record(&file.id).unwrap();
        (file.id, manifest)
    }

    /// How many of each chunk's fragments each node holds.
    fn per_chunk(&self, manifest: &Manifest) -> Vec<Vec<usize>> {
        (0..manifest.chunk_count())
            .map(|chunk| {
                let ids = manifest.chunk_ids(chunk);
                self.nodes.iter().map(|node| ids.iter().filter(|id| node.holds(id)).count()).collect()
            })
            .collect()
    }

    async fn restore_on(&self, at: usize, file_id: &str) -> Result<Vec<u8>, crate::drive::DriveError> {
        let out = self.nodes[at]._home.path().join("restored");
        self.nodes[at].net.restore(file_id.to_string(), out.clone()).await?;
        Ok(std::fs::read(out).unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_spreads_two_fragments_per_chunk_to_each_node_and_restores_anywhere() {
    let cluster = cluster(3);
    let bytes = content(2 * 1024 * 1024 + 512 * 1024);
    let (file_id, manifest) = cluster.add_and_spread(1, &bytes).await;

    assert_eq!(manifest.chunk_count(), 3);
    for counts in cluster.per_chunk(&manifest) {
        assert_eq!(counts, vec![2, 2, 2], "4 + 2 fragments spread evenly over three nodes");
    }
    for node in &cluster.nodes {
        let files = node.net.list_files().await.unwrap();
        assert_eq!(files.len(), 1, "every node has the record");
        assert_eq!(files[0].health.state, "full", "health counts fragments on online members");
    }
    assert_eq!(cluster.restore_on(2, &file_id).await.unwrap(), bytes, "restored from the others");

    // With one node away, the other two still hold k = 4 of every chunk.
    cluster.mesh.set_online(cluster.nodes[1].id, false, 0);
    assert_eq!(cluster.restore_on(0, &file_id).await.unwrap(), bytes);
    cluster.mesh.set_online(cluster.nodes[2].id, false, 0);
    let alone = cluster.restore_on(0, &file_id).await;
    assert!(
        matches!(alone, Err(crate::drive::DriveError::Unavailable { present: 2, needed: 4, .. })),
        "one node alone cannot restore: {alone:?}"
    );
}

/// Everything a streamed restore from byte `from` gives, and how it ended.
async fn stream_on(node: &Node, file_id: &str, from: u64) -> (Vec<u8>, Result<(), crate::drive::DriveError>) {
    let (_, mut restoring) = node.net.restore_stream(file_id.to_string(), from).await.expect("the restore starts");
    let mut bytes = Vec::new();
    while let Some(chunk) = restoring.bytes.recv().await {
        bytes.extend_from_slice(&chunk);
    }
    (bytes, restoring.done.await.map(|_| ()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_restore_gives_any_range_from_the_others_fragments() {
    let cluster = cluster(3);
    let bytes = content(3 * 1024 * 1024 + 4321);
    let (file_id, _) = cluster.add_and_spread(1, &bytes).await;
    let node = &cluster.nodes[2];

    for from in [0, 5, 1024 * 1024, 2 * 1024 * 1024 + 17, bytes.len() as u64] {
        let (got, done) = stream_on(node, &file_id, from).await;
        done.expect("the restore ends well");
        assert_eq!(got, bytes[from as usize..], "the bytes from {from}");
    }

    // With the others gone it says so before a byte is given.
    for other in [0, 1] {
        cluster.mesh.set_online(cluster.nodes[other].id, false, 0);
    }
    let alone = node.net.restore_stream(file_id.clone(), 0).await.err();
    assert!(
        matches!(alone, Some(crate::drive::DriveError::Unavailable { present: 2, needed: 4, .. })),
        "alone: {alone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_was_away_gets_the_catalog_and_deletions_when_it_links_up() {
    let cluster = cluster(3);
    let away = cluster.nodes[2].id;
    cluster.mesh.set_online(away, false, 0);
    let (file_id, manifest) = cluster.add_and_spread(0, &content(300_000)).await;
    // The away node's share stays with the node that added the file.
    assert_eq!(cluster.per_chunk(&manifest), vec![vec![4, 2, 0]]);
    assert!(cluster.nodes[2].net.list_files().await.unwrap().is_empty());

    cluster.mesh.set_online(away, true, 0);
    cluster.nodes[0].net.on_member_up(away).await;
    cluster.mesh.settled().await;
    let files = cluster.nodes[2].net.list_files().await.unwrap();
    assert_eq!(files.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![file_id.clone()]);

    cluster.nodes[0].net.drive().remove(&file_id, 10).unwrap();
    cluster.nodes[0].net.announce_deletion(&file_id, 10).await;
    cluster.mesh.settled().await;
    for node in &cluster.nodes {
        assert!(node.net.list_files().await.unwrap().is_empty(), "the deletion reached every node");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_waits_out_the_grace_period_then_recreates_what_a_gone_node_held() {
    let cluster = cluster(3);
    let bytes = content(1024 * 1024 + 1000);
    let (file_id, manifest) = cluster.add_and_spread(2, &bytes).await;
    let gone = cluster.nodes[2].id;

    // Gone just now: nothing is re-created yet.
    cluster.mesh.set_online(gone, false, crate::clock::now_ms());
    for node in &cluster.nodes[..2] {
        node.net.scrub_and_repair().await;
    }
    cluster.mesh.settled().await;
    assert_eq!(cluster.per_chunk(&manifest), vec![vec![2, 2, 2]; 2]);

    // Gone past the grace period: the smallest online id re-creates the
    // lost fragments on the two live nodes.
    cluster.mesh.set_online(gone, false, crate::clock::now_ms() - 2 * HOUR_MS);
    for node in &cluster.nodes[..2] {
        node.net.scrub_and_repair().await;
    }
    cluster.mesh.settled().await;
    for (chunk, counts) in cluster.per_chunk(&manifest).into_iter().enumerate() {
        assert_eq!(counts[0] + counts[1], 6, "chunk {chunk}: every fragment on a live node ({counts:?})");
        assert!(counts[0] >= 2 && counts[1] >= 2, "chunk {chunk}: spread over both ({counts:?})");
    }
    assert_eq!(cluster.restore_on(1, &file_id).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_rotted_on_disk_is_rebuilt_from_the_other_nodes() {
    let cluster = cluster(3);
    let bytes = content(500_000);
    let (file_id, manifest) = cluster.add_and_spread(0, &bytes).await;
    let rotted = *manifest.fragment_ids.iter().find(|id| cluster.nodes[1].holds(id)).unwrap();
    let hex = rotted.to_string();
    let path = cluster.nodes[1]._home.path().join("drive/fragments").join(&hex[..2]).join(&hex);
    let mut stored = std::fs::read(&path).unwrap();
    stored[10] ^= 0xff;
    std::fs::write(&path, stored).unwrap();

    cluster.nodes[1].net.scrub_and_repair().await;
    cluster.mesh.settled().await;
    assert_eq!(FragmentId::of(&std::fs::read(&path).unwrap()), rotted, "rebuilt in place");
    assert_eq!(cluster.per_chunk(&manifest), vec![vec![2, 2, 2]]);
    assert_eq!(cluster.restore_on(1, &file_id).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_upload_is_spread_while_it_comes_in_and_only_its_share_is_written_here() {
    let cluster = cluster(3);
    let uploader = &cluster.nodes[0];
    let drive = uploader.net.drive().clone();
    let key = NetworkKey::from_bytes([7; 32]);
    let bytes = content(3 * 1024 * 1024 + 99);
    let mut upload = drive.begin_upload(&key, "page.bin", bytes.len() as u64).unwrap();
    let placing = uploader.net.placing(upload.params.shards());
    for (i, piece) in bytes.chunks(700_000).enumerate() {
        for chunk in upload.push((i * 700_000) as u64, piece).unwrap() {
            let index = chunk.index;
            let here = placing.place(chunk).await;
            assert_eq!(here.len(), 2, "only this node's share of chunk {index} stays here");
            drive.store_fragments(&here).unwrap();
        }
    }
    placing.finish().await.unwrap();
    let before_record = uploader.net.drive().store().list().len();
    let file = drive.finish_upload(&key, upload, 1).unwrap();
    uploader.net.distribute(&file.id).await;
    cluster.mesh.settled().await;

    let (_, manifest) = drive.record(&file.id).unwrap();
    assert_eq!(before_record, 2 * manifest.chunk_count() as usize, "nothing else was ever written here");
    for counts in cluster.per_chunk(&manifest) {
        assert_eq!(counts, vec![2, 2, 2], "spread as distribute would have");
    }
    for node in &cluster.nodes {
        let files = node.net.list_files().await.unwrap();
        assert_eq!(files[0].health.state, "full", "every node knows where the fragments are");
    }
    assert_eq!(cluster.restore_on(2, &file.id).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_abandoned_upload_placed_on_the_members_is_swept_and_nothing_else() {
    let settings =
        crate::engine::drive_net::Settings { sweep_grace: std::time::Duration::ZERO, ..testkit::settings(HOUR_MS) };
    let cluster = cluster_with(3, settings);
    let bytes = content(2 * 1024 * 1024 + 7);
    let (file_id, manifest) = cluster.add_and_spread(0, &bytes).await;
    let held = |node: &Node| node.net.drive().store().list().len();
    let before: Vec<usize> = cluster.nodes.iter().map(held).collect();

    // A page's upload placed two chunks on the members, then the page closed.
    let uploader = &cluster.nodes[0];
    let drive = uploader.net.drive().clone();
    // Other bytes than the file's (chunks of equal bytes at equal places
    // are the same fragments, which no sweep may take).
    let gone: Vec<u8> = content(3 * 1024 * 1024 + 1).iter().map(|b| b ^ 0x5a).collect();
    let key = NetworkKey::from_bytes([7; 32]);
    let mut upload = drive.begin_upload(&key, "gone.bin", gone.len() as u64).unwrap();
    let placing = uploader.net.placing(upload.params.shards());
    for chunk in upload.push(0, &gone[..2 * 1024 * 1024]).unwrap() {
        drive.store_fragments(&placing.place(chunk).await).unwrap();
    }
    placing.finish().await.unwrap();
    drop(upload);
    let left: Vec<usize> = cluster.nodes.iter().map(held).collect();
    assert!(left.iter().zip(&before).all(|(l, b)| l > b), "every node holds some of it: {left:?} after {before:?}");

    // Every link came up (and its catalog was traded) long enough ago.
    for node in &cluster.nodes {
        for other in cluster.nodes.iter().filter(|o| o.id != node.id) {
            node.net.on_member_up(other.id).await;
        }
    }
    cluster.mesh.settled().await;
    for node in &cluster.nodes {
        node.net.sweep().await;
    }
    let after: Vec<usize> = cluster.nodes.iter().map(held).collect();
    assert_eq!(after, before, "only the abandoned fragments went");
    for counts in cluster.per_chunk(&manifest) {
        assert_eq!(counts, vec![2, 2, 2]);
    }
    assert_eq!(cluster.restore_on(2, &file_id).await.unwrap(), bytes);
}

/// A laptop's (node 0's) upload placed fragments on the desktop (node 1),
/// then the laptop left (its link dropped) before its record went out and
/// finished the file with its own share only, under k. Returns the file's
/// bytes and id, and how many fragments the desktop holds.
async fn laptop_left_mid_upload(cluster: &Cluster) -> (Vec<u8>, String, usize) {
    let (laptop, desktop) = (&cluster.nodes[0], &cluster.nodes[1]);
    let drive = laptop.net.drive().clone();
    let key = NetworkKey::from_bytes([7; 32]);
    let bytes: Vec<u8> = content(3 * 1024 * 1024 + 5).iter().map(|b| b ^ 0x33).collect();
    let mut upload = drive.begin_upload(&key, "trip.bin", bytes.len() as u64).unwrap();
    let placing = laptop.net.placing(upload.params.shards());
    for chunk in upload.push(0, &bytes).unwrap() {
        drive.store_fragments(&placing.place(chunk).await).unwrap();
    }
    placing.finish().await.unwrap();
    let placed = desktop.net.drive().store().list().len();
    assert!(placed > 0, "the desktop took its share");
    cluster.mesh.set_online(laptop.id, false, crate::clock::now_ms());
    let file = drive.finish_upload(&key, upload, 1).unwrap();
    (bytes, file.id, placed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_are_not_swept_while_a_member_that_may_name_them_is_away() {
    // The laptop stayed away longer than the sweep grace: sweeping the
    // desktop's share would lose the file.
    let settings =
        crate::engine::drive_net::Settings { sweep_grace: std::time::Duration::ZERO, ..testkit::settings(HOUR_MS) };
    let cluster = cluster_with(2, settings);
    let (laptop, desktop) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (bytes, file, placed) = laptop_left_mid_upload(&cluster).await;
    let held = || desktop.net.drive().store().list().len();

    desktop.net.sweep().await;
    assert_eq!(held(), placed, "kept while the laptop, which may name them, is away");

    cluster.mesh.set_online(laptop.id, true, crate::clock::now_ms());
    desktop.net.on_member_up(laptop.id).await;
    laptop.net.on_member_up(desktop.id).await;
    cluster.mesh.settled().await;
    desktop.net.sweep().await;
    assert_eq!(held(), placed, "named by the record that came once the laptop was back");
    assert_eq!(cluster.restore_on(1, &file).await.unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_are_not_swept_before_a_member_just_linked_has_had_time_to_send_its_catalog() {
    // The desktop's sweep runs just after the laptop's link came back,
    // before the laptop's catalog (with the record naming the fragments)
    // has come: every member is linked, yet a record is missing.
    let settings = crate::engine::drive_net::Settings {
        sweep_grace: std::time::Duration::ZERO,
        sweep_settle: std::time::Duration::from_secs(3600),
        ..testkit::settings(HOUR_MS)
    };
    let cluster = cluster_with(2, settings);
    let (laptop, desktop) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (bytes, file, placed) = laptop_left_mid_upload(&cluster).await;
    let held = || desktop.net.drive().store().list().len();

    cluster.mesh.set_online(laptop.id, true, crate::clock::now_ms());
    desktop.net.on_member_up(laptop.id).await;
    desktop.net.sweep().await;
    assert_eq!(held(), placed, "kept while the laptop's catalog may still be coming");

    laptop.net.on_member_up(desktop.id).await;
    cluster.mesh.settled().await;
    assert_eq!(cluster.restore_on(1, &file).await.unwrap(), bytes);
}
