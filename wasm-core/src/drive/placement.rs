//! Placement: which node holds which fragment, and the repair plan when
//! nodes are gone.
//!
//! Weighted rendezvous hashing per chunk: every node gets a score for
//! `(file, chunk)` from a hash of both, scaled by its free space
//! (`w / -ln(u)`, weighted HRW), and the chunk's `k + m` fragments go to the
//! best-ranked nodes, one each when there are enough nodes and as evenly as
//! possible when there are not. Hence:
//!
//! - fragments of one chunk land on distinct nodes whenever the node count
//!   allows;
//! - load follows free space;
//! - after a join or a leave, the target set of a chunk changes by at most
//!   one node, and [`rebalance_plan`] moves only fragments whose holder left
//!   the set: close to the minimum. [`repair_plan`] re-homes only what was
//!   lost.
//!
//! The logarithm comes from `libm`, the same pure-Rust code natively and in
//! wasm, so the browser and the host compute identical placements.

use crate::identity::NodeId;

use super::keys::{FileId, FragmentId};

/// A node that can hold fragments, with its free space in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node: NodeId,
    pub free_bytes: u64,
}

/// A node with less free space than this takes no new fragments while
/// another node can (1 GiB: room for the index, temp files and the OS).
pub const MIN_FREE_BYTES: u64 = 1 << 30;

/// Candidates from what each node reported of its free space (`None`: not
/// heard yet, taken as `fallback`, this node's own). Weights are rounded
/// down to a power of two, so placements stay put while free space drifts
/// and only move when a node's space halves or doubles; nodes below
/// [`MIN_FREE_BYTES`] are left out unless no node has that much.
pub fn candidates_by_space(nodes: &[(NodeId, Option<u64>)], fallback: u64) -> Vec<Candidate> {
    let weigh = |free: Option<u64>| {
        let free = free.unwrap_or(fallback).max(1);
        1u64 << (63 - free.leading_zeros())
    };
    let all: Vec<Candidate> =
        nodes.iter().map(|(node, free)| Candidate { node: *node, free_bytes: weigh(*free) }).collect();
    let roomy: Vec<Candidate> = all.iter().copied().filter(|c| c.free_bytes >= MIN_FREE_BYTES).collect();
    if roomy.is_empty() {
        all
    } else {
        roomy
    }
}

fn score(node: &NodeId, file: &FileId, chunk: u64, free_bytes: u64) -> f64 {
    let mut h = blake3::Hasher::new();
    h.update(b"mailmesh placement v1").update(&file.0).update(&chunk.to_le_bytes()).update(node.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    // u in (0, 1), never 0 or 1, from the top 53 bits.
    let u = ((u64::from_le_bytes(first) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let weight = free_bytes.max(1) as f64;
    weight / -libm::log(u)
}

/// How many fragments of the chunk each node should hold, best node first:
/// the `shards` fragments spread as evenly as the node count allows (one
/// each on the top `shards` nodes when there are enough; otherwise
/// `shards / n` each and one more on the top `shards % n`).
fn targets(file: &FileId, chunk: u64, shards: usize, nodes: &[Candidate]) -> Vec<(NodeId, usize)> {
    let mut ranked: Vec<(f64, NodeId)> =
        nodes.iter().map(|c| (score(&c.node, file, chunk, c.free_bytes), c.node)).collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranked.dedup_by(|a, b| a.1 == b.1);
    let n = ranked.len().max(1);
    let (floor, extra) = (shards / n, shards % n);
    ranked
        .into_iter()
        .enumerate()
        .map(|(rank, (_, node))| (node, floor + usize::from(rank < extra)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// What a chunk's placement is seeded with: its first fragment's id. It is
/// known as soon as the chunk is coded (a file's id only once its last byte
/// is in) and is in the manifest, so the node adding a file and any node
/// later distributing or repairing it place each chunk alike.
pub fn chunk_seed(chunk_ids: &[FragmentId]) -> FileId {
    FileId(chunk_ids.first().map(|id| id.0).unwrap_or_default())
}

/// The node for each of a chunk's `shards` fragments (in shard order), for
/// a chunk placed from scratch (`file`: its [`chunk_seed`]). Empty if there
/// are no candidates.
pub fn place_chunk(file: &FileId, chunk: u64, shards: usize, nodes: &[Candidate]) -> Vec<NodeId> {
    let targets = targets(file, chunk, shards, nodes);
    let mut out = Vec::with_capacity(shards);
    for round in 0.. {
        if out.len() == shards || targets.is_empty() {
            break;
        }
        out.extend(targets.iter().filter(|(_, count)| *count > round).map(|(node, _)| *node));
    }
    out.truncate(shards);
    out
}

/// Move (or re-create) fragment `shard` of `chunk` onto `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub chunk: u64,
    pub shard: usize,
    pub target: NodeId,
}

/// New homes for the fragments of one chunk, given who holds them now
/// (`holders[shard]`, `None` if nobody). Fragments whose holder is not in
/// `nodes` always get a new home; with `rebalance`, so do fragments on nodes
/// holding more than their target (after a join). Everything else stays,
/// so the moves are the fewest that reach the target spread.
fn chunk_moves(
    file: &FileId,
    chunk: u64,
    holders: &[Option<NodeId>],
    nodes: &[Candidate],
    rebalance: bool,
) -> Vec<Move> {
    let mut want = targets(file, chunk, holders.len(), nodes);
    let mut homeless = Vec::new();
    for (shard, holder) in holders.iter().enumerate() {
        let slot = holder.and_then(|h| want.iter_mut().find(|(node, _)| *node == h));
        match slot {
            Some((_, count)) if *count > 0 => *count -= 1,
            Some(_) if !rebalance => {}
            _ if !rebalance && holder.is_some_and(|h| nodes.iter().any(|c| c.node == h)) => {}
            _ => homeless.push(shard),
        }
    }
    let mut moves = Vec::with_capacity(homeless.len());
    let mut open = want.iter_mut().flat_map(|(node, count)| std::iter::repeat_n(*node, std::mem::take(count)));
    for shard in homeless {
        // With fewer targets than homeless fragments (more fragments than
        // nodes and no rebalancing), the rest wait for the next plan.
        let Some(target) = open.next() else { break };
        moves.push(Move { chunk, shard, target });
    }
    moves
}

/// Moves that bring a file's fragments to the target spread over `nodes`
/// after nodes joined or left: only fragments on nodes that left or above
/// their share move.
pub fn rebalance_plan(file: &FileId, holders: &[Vec<Option<NodeId>>], nodes: &[Candidate]) -> Vec<Move> {
    holders.iter().enumerate().flat_map(|(chunk, row)| chunk_moves(file, chunk as u64, row, nodes, true)).collect()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairPlan {
    /// Fragments to re-create (from any `k` others) on a new node.
    pub tasks: Vec<Move>,
    /// Chunks with fewer than `k` fragments on live nodes: they cannot be
    /// repaired until a holder returns.
    pub unrecoverable: Vec<u64>,
}

/// Plans the repair of one file after nodes were lost: `holders[chunk][shard]`
/// is the node holding that fragment, `live` the nodes that count as present.
/// Fragments on live nodes stay; each lost one goes to a live node that
/// holds less than its share of the chunk.
pub fn repair_plan(file: &FileId, k: usize, holders: &[Vec<Option<NodeId>>], live: &[Candidate]) -> RepairPlan {
    let mut plan = RepairPlan::default();
    for (chunk, row) in holders.iter().enumerate() {
        let present = row.iter().filter(|h| h.is_some_and(|h| live.iter().any(|c| c.node == h))).count();
        if present < k {
            plan.unrecoverable.push(chunk as u64);
            continue;
        }
        plan.tasks.extend(chunk_moves(file, chunk as u64, row, live, false));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeSecrets;
    use std::collections::HashMap;

    #[test]
    fn free_space_weighs_in_coarsely_and_a_full_node_is_left_out() {
        let ids: Vec<NodeId> = nodes(3, 9).iter().map(|c| c.node).collect();
        let gib = 1u64 << 30;
        let reported = [(ids[0], Some(100 * gib)), (ids[1], Some(70 * gib)), (ids[2], Some(gib / 2))];
        let candidates = candidates_by_space(&reported, 5 * gib);
        assert_eq!(candidates.len(), 2, "the nearly full node takes nothing new");
        assert_eq!(candidates[0].free_bytes, 64 * gib);
        assert_eq!(candidates[1].free_bytes, 64 * gib, "70 and 100 GiB weigh the same");
        let unknown = candidates_by_space(&[(ids[0], None)], 3 * gib);
        assert_eq!(unknown[0].free_bytes, 2 * gib, "a node not heard from is taken to be like this one");
        let all_full = candidates_by_space(&[(ids[0], Some(10)), (ids[1], Some(0))], 0);
        assert_eq!(all_full.len(), 2, "with every node full, placement still has somewhere to go");
    }

    fn nodes(n: usize, seed: u8) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                node: NodeSecrets::from_seeds([seed.wrapping_add(i as u8); 32], [0; 32]).node_id(),
                free_bytes: 1 << 40,
            })
            .collect()
    }

    fn place_all(file: &FileId, chunks: u64, shards: usize, nodes: &[Candidate]) -> Vec<Vec<NodeId>> {
        (0..chunks).map(|c| place_chunk(file, c, shards, nodes)).collect()
    }

    fn holders(placed: &[Vec<NodeId>]) -> Vec<Vec<Option<NodeId>>> {
        placed.iter().map(|r| r.iter().copied().map(Some).collect()).collect()
    }

    /// Applies moves and checks the result is the target spread.
    fn apply(file: &FileId, placed: &[Vec<NodeId>], moves: &[Move], nodes: &[Candidate]) {
        let mut after = placed.to_vec();
        for m in moves {
            after[m.chunk as usize][m.shard] = m.target;
        }
        for (chunk, row) in after.iter().enumerate() {
            let mut got = row.clone();
            got.sort();
            let mut want = place_chunk(file, chunk as u64, row.len(), nodes);
            want.sort();
            assert_eq!(got, want, "chunk {chunk} reaches the target spread");
        }
    }

    #[test]
    fn fragments_of_a_chunk_are_on_distinct_nodes_when_possible() {
        let file = FileId([7; 32]);
        for n in 1..12 {
            let ns = nodes(n, 1);
            for chunk in 0..50 {
                let placed = place_chunk(&file, chunk, 6, &ns);
                assert_eq!(placed.len(), 6);
                let distinct: std::collections::HashSet<_> = placed.iter().collect();
                assert_eq!(distinct.len(), n.min(6), "n = {n}");
            }
        }
    }

    #[test]
    fn load_is_within_20_percent_of_ideal_on_3_to_20_nodes() {
        let file = FileId([9; 32]);
        for n in 3..=20 {
            let ns = nodes(n, 40);
            let mut load: HashMap<NodeId, usize> = HashMap::new();
            let chunks = 2000;
            for row in place_all(&file, chunks, 6, &ns) {
                for node in row {
                    *load.entry(node).or_default() += 1;
                }
            }
            let ideal = (chunks as f64 * 6.0) / n as f64;
            for c in &ns {
                let got = *load.get(&c.node).unwrap_or(&0) as f64;
                assert!((got - ideal).abs() <= 0.2 * ideal, "n = {n}: {got} vs ideal {ideal}");
            }
        }
    }

    #[test]
    fn load_follows_free_space() {
        let file = FileId([3; 32]);
        let mut ns = nodes(8, 90);
        ns[0].free_bytes *= 2;
        let mut load: HashMap<NodeId, usize> = HashMap::new();
        for row in place_all(&file, 3000, 2, &ns) {
            for node in row {
                *load.entry(node).or_default() += 1;
            }
        }
        let big = load[&ns[0].node] as f64;
        let others = ns[1..].iter().map(|c| load[&c.node] as f64).sum::<f64>() / 7.0;
        assert!(big > 1.5 * others, "a node with twice the space holds more: {big} vs {others}");
    }

    #[test]
    fn joins_and_leaves_move_close_to_the_minimum() {
        let file = FileId([5; 32]);
        let chunks = 1000;
        for n in [3, 4, 8, 12] {
            let before = nodes(n, 120);
            let placed = place_all(&file, chunks, 6, &before);
            let total = chunks as usize * 6;

            // Join: the newcomer takes its fair share and nothing else moves.
            let mut after = before.clone();
            after.push(nodes(1, 250)[0]);
            let moves = rebalance_plan(&file, &holders(&placed), &after);
            apply(&file, &placed, &moves, &after);
            let ideal = total as f64 / (n + 1) as f64;
            let moved = moves.len() as f64;
            assert!(moved <= 1.2 * ideal, "join n = {n}: {moved} moved, ideal {ideal}");
            assert!(moves.iter().all(|m| m.target == after[n].node), "only onto the newcomer");

            // Leave: what the leaver held moves, and with fewer nodes than
            // fragments per chunk, what evens the spread out again.
            let left = &before[1..];
            let moves = rebalance_plan(&file, &holders(&placed), left);
            apply(&file, &placed, &moves, left);
            let held = placed.iter().flatten().filter(|x| **x == before[0].node).count() as f64;
            let moved = moves.len() as f64;
            let slack = if n - 1 < 6 { 1.5 } else { 1.0 };
            assert!(moved >= held && moved <= slack * held, "leave n = {n}: {moved} moved, minimum {held}");
        }
    }

    #[test]
    fn repair_moves_only_lost_fragments_to_nodes_without_one_of_the_chunk() {
        let file = FileId([11; 32]);
        let ns = nodes(8, 10);
        let placed = place_all(&file, 100, 6, &ns);
        let live: Vec<Candidate> = ns[1..].to_vec();
        let plan = repair_plan(&file, 4, &holders(&placed), &live);
        let lost = placed.iter().flatten().filter(|n| **n == ns[0].node).count();
        assert_eq!(plan.tasks.len(), lost);
        assert!(plan.unrecoverable.is_empty());
        for t in &plan.tasks {
            assert_eq!(placed[t.chunk as usize][t.shard], ns[0].node);
            assert_ne!(t.target, ns[0].node);
            assert!(!placed[t.chunk as usize].contains(&t.target), "target holds no fragment of the chunk yet");
        }
    }

    #[test]
    fn chunks_below_k_live_fragments_are_reported_unrecoverable() {
        let file = FileId([12; 32]);
        let ns = nodes(6, 30);
        let placed = place_all(&file, 10, 6, &ns);
        let plan = repair_plan(&file, 4, &holders(&placed), &ns[..3]);
        assert_eq!(plan.unrecoverable.len(), 10);
        assert!(plan.tasks.is_empty());
    }

    #[test]
    fn placement_is_deterministic() {
        let file = FileId([1; 32]);
        let ns = nodes(5, 60);
        assert_eq!(place_all(&file, 20, 6, &ns), place_all(&file, 20, 6, &ns));
        let mut reversed = ns.clone();
        reversed.reverse();
        assert_eq!(place_all(&file, 20, 6, &ns), place_all(&file, 20, 6, &reversed), "order of nodes does not matter");
    }
}
