//! Memory planner: tensor lifetimes -> arena offsets (greedy by size, as TFLite Micro's
//! `GreedyMemoryPlanner`), the lower bound it is measured against, and a verifier that
//! proves no two tensors live at the same time share a byte.
//!
//! Time is measured in op indices. A tensor written by op `i` and last read by op `j`
//! lives over `[i, j]`; model inputs are live from before op 0, outputs to after the
//! last op. An op's output and its inputs are therefore live together at that op and
//! never overlap, which the runtime also requires.

use mote_runtime::format::ARENA_ALIGN;

use crate::graph::{Graph, TensorKind};

/// Where every arena tensor lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Byte offset in the arena per tensor; None for weights and unused tensors.
    pub offsets: Vec<Option<usize>>,
    /// Total arena bytes (persistent region included).
    pub arena_bytes: usize,
    /// Bytes at the start of the arena that persist between calls.
    pub persistent_bytes: usize,
    /// The most bytes (aligned sizes) live at any one op, plus the persistent region: no
    /// plan can use less.
    pub lower_bound_bytes: usize,
}

/// A scratch tensor's live range, inclusive, in op time (`0` = before op 0, op `i` is
/// at time `i + 1`, `ops + 1` = after the last op).
#[derive(Clone, Copy, Debug)]
struct Life {
    first: usize,
    last: usize,
}

fn align(n: usize) -> usize {
    n.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

fn lifetimes(g: &Graph) -> Vec<Option<Life>> {
    let end = g.ops.len() + 1;
    let mut life: Vec<Option<Life>> = vec![None; g.tensors.len()];
    let mut touch = |id: u32, t: usize| {
        let l = life[id as usize].get_or_insert(Life { first: t, last: t });
        l.first = l.first.min(t);
        l.last = l.last.max(t);
    };
    for &i in &g.inputs {
        touch(i, 0);
    }
    for (i, op) in g.ops.iter().enumerate() {
        touch(op.output, i + 1);
        for id in op.inputs.iter().flatten() {
            touch(*id, i + 1);
        }
    }
    for &o in &g.outputs {
        touch(o, end);
    }
    for (id, t) in g.tensors.iter().enumerate() {
        if !matches!(t.kind, TensorKind::Activation) {
            life[id] = None;
        }
    }
    life
}

fn overlaps(a: Life, b: Life) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// Plans the arena for `g`.
pub fn plan(g: &Graph) -> Plan {
    let mut offsets = vec![None; g.tensors.len()];
    // Persistent tensors first, packed at the start, live for ever.
    let mut persistent_bytes = 0;
    for (id, t) in g.tensors.iter().enumerate() {
        if matches!(t.kind, TensorKind::Persistent) {
            offsets[id] = Some(persistent_bytes);
            persistent_bytes += align(t.bytes());
        }
    }
    let life = lifetimes(g);
    let mut order: Vec<usize> = (0..g.tensors.len()).filter(|&i| life[i].is_some()).collect();
    // Largest first; ties by first use, then id, so the plan is deterministic.
    order.sort_by_key(|&i| (std::cmp::Reverse(align(g.tensors[i].bytes())), life[i].map(|l| l.first), i));
    let mut placed: Vec<(usize, usize, Life)> = Vec::new(); // (offset, aligned size, life)
    let mut scratch_end = persistent_bytes;
    for i in order {
        let (Some(l), size) = (life[i], align(g.tensors[i].bytes())) else { continue };
        let mut busy: Vec<(usize, usize)> =
            placed.iter().filter(|p| overlaps(p.2, l)).map(|p| (p.0, p.0 + p.1)).collect();
        busy.sort_unstable();
        // Lowest gap that fits, scanning the busy ranges in address order.
        let mut at = persistent_bytes;
        for (s, e) in busy {
            if at + size <= s {
                break;
            }
            at = at.max(e);
        }
        offsets[i] = Some(at);
        placed.push((at, size, l));
        scratch_end = scratch_end.max(at + size);
    }
    Plan {
        offsets,
        arena_bytes: scratch_end,
        persistent_bytes,
        lower_bound_bytes: lower_bound(g, &life) + persistent_bytes,
    }
}

fn lower_bound(g: &Graph, life: &[Option<Life>]) -> usize {
    let mut live = vec![0usize; g.ops.len() + 2];
    for (i, l) in life.iter().enumerate() {
        if let Some(l) = l {
            for slot in &mut live[l.first..=l.last] {
                *slot += align(g.tensors[i].bytes());
            }
        }
    }
    live.into_iter().max().unwrap_or(0)
}

/// Checks a graph before it is planned: every tensor id names a tensor, and every
/// activation an op reads is a model input or the output of an earlier op (ops run in
/// order, so anything else is a cycle or a tensor nobody writes).
pub fn check_dataflow(g: &Graph) -> Result<(), String> {
    let n = g.tensors.len();
    let ids = g.inputs.iter().chain(&g.outputs).copied();
    let ids = ids.chain(g.ops.iter().flat_map(|op| op.inputs.iter().flatten().copied().chain([op.output])));
    if let Some(bad) = ids.into_iter().find(|&id| id as usize >= n) {
        return Err(format!("tensor id {bad} does not exist ({n} tensors)"));
    }
    let mut written = vec![false; n];
    for &i in &g.inputs {
        written[i as usize] = true;
    }
    for (i, op) in g.ops.iter().enumerate() {
        for &id in op.inputs.iter().flatten() {
            if matches!(g.tensors[id as usize].kind, TensorKind::Activation) && !written[id as usize] {
                return Err(format!(
                    "op #{i} ({}) reads {} before any op writes it (a cycle, or a tensor nobody produces)",
                    op.opcode.name(),
                    g.tensors[id as usize].name
                ));
            }
        }
        written[op.output as usize] = true;
    }
    Ok(())
}

/// Checks a plan: every arena tensor placed, aligned and inside the arena; persistent
/// tensors inside the persistent region; no two tensors live at the same time overlap.
pub fn verify(g: &Graph, plan: &Plan) -> Result<(), String> {
    check_dataflow(g)?;
    let life = lifetimes(g);
    let name = |i: usize| &g.tensors[i].name;
    for (i, t) in g.tensors.iter().enumerate() {
        let needs_place = life[i].is_some() || matches!(t.kind, TensorKind::Persistent);
        match (needs_place, plan.offsets[i]) {
            (true, None) => return Err(format!("tensor {} has no offset", name(i))),
            (true, Some(o)) => {
                if o % ARENA_ALIGN != 0 {
                    return Err(format!("tensor {} at {o} is not {ARENA_ALIGN}-byte aligned", name(i)));
                }
                let (lo, hi) = if matches!(t.kind, TensorKind::Persistent) {
                    (0, plan.persistent_bytes)
                } else {
                    (plan.persistent_bytes, plan.arena_bytes)
                };
                if o < lo || o + t.bytes() > hi {
                    return Err(format!("tensor {} at {o}..{} lies outside {lo}..{hi}", name(i), o + t.bytes()));
                }
            }
            (false, _) => {}
        }
    }
    let placed: Vec<(usize, usize, usize, Life)> =
        (0..g.tensors.len()).filter_map(|i| Some((i, plan.offsets[i]?, g.tensors[i].bytes(), life[i]?))).collect();
    for (a, &(i, oi, si, li)) in placed.iter().enumerate() {
        for &(j, oj, sj, lj) in &placed[a + 1..] {
            if overlaps(li, lj) && oi < oj + sj && oj < oi + si {
                return Err(format!(
                    "tensors {} ({oi}..{}) and {} ({oj}..{}) are live together and overlap",
                    name(i),
                    oi + si,
                    name(j),
                    oj + sj
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mote_runtime::OpCode;
    use proptest::prelude::*;

    use super::*;
    use crate::graph::{OpDef, WeightDType};

    /// A random DAG: `sizes[i]` elements for op i's output; op i reads up to two earlier
    /// tensors chosen by `picks`.
    fn random_graph(inputs: usize, sizes: &[usize], picks: &[(usize, usize)], outputs: usize) -> Graph {
        let mut g = Graph::new("test", String::new(), WeightDType::F16);
        for i in 0..inputs {
            g.input(&format!("in{i}"), vec![1 + (i * 7) % 13, 16]);
        }
        for (i, (&size, &(a, b))) in sizes.iter().zip(picks).enumerate() {
            let avail = g.tensors.len();
            let out = g.activation(&format!("t{i}"), vec![size]);
            let mut ins = [None; 6];
            ins[0] = Some((a % avail) as u32);
            ins[1] = Some((b % avail) as u32);
            g.ops.push(OpDef { opcode: OpCode::Add, inputs: ins, output: out, params: [0; 8] });
        }
        let n = g.tensors.len();
        for o in 0..outputs.min(sizes.len()) {
            g.outputs.push((n - 1 - o) as u32);
        }
        g
    }

    proptest! {
        #[test]
        fn plans_never_overlap_live_tensors(
            inputs in 1usize..4,
            ops in prop::collection::vec((1usize..5000, any::<usize>(), any::<usize>()), 1..60),
            outputs in 1usize..3,
        ) {
            let sizes: Vec<usize> = ops.iter().map(|o| o.0).collect();
            let picks: Vec<(usize, usize)> = ops.iter().map(|o| (o.1, o.2)).collect();
            let g = random_graph(inputs, &sizes, &picks, outputs);
            let p = plan(&g);
            prop_assert_eq!(verify(&g, &p), Ok(()));
            prop_assert!(p.arena_bytes >= p.lower_bound_bytes);
            // Greedy-by-size stays within 2x of the bound on these graphs.
            prop_assert!(p.arena_bytes <= 2 * p.lower_bound_bytes, "{} vs {}", p.arena_bytes, p.lower_bound_bytes);
        }
    }

    #[test]
    fn verifier_catches_overlap_and_out_of_range() {
        let g = random_graph(1, &[100, 100, 100], &[(0, 0), (1, 1), (2, 1)], 1);
        let p = plan(&g);
        assert_eq!(verify(&g, &p), Ok(()));
        // t1 and t2 are live together (op 2 reads t1 and writes t2): put them together.
        let mut bad = p.clone();
        bad.offsets[3] = bad.offsets[2];
        assert!(verify(&g, &bad).unwrap_err().contains("overlap"));
        let mut bad = p.clone();
        bad.offsets[3] = Some(bad.arena_bytes);
        assert!(verify(&g, &bad).unwrap_err().contains("outside"));
        let mut bad = p.clone();
        bad.offsets[3] = Some(bad.offsets[3].unwrap() + 4);
        assert!(verify(&g, &bad).unwrap_err().contains("aligned"));
        let mut bad = p;
        bad.offsets[3] = None;
        assert!(verify(&g, &bad).unwrap_err().contains("no offset"));
    }

    #[test]
    fn chain_reuses_memory() {
        // in -> t0 -> t1 -> t2 -> t3: only two neighbours are ever live at once.
        let g = random_graph(1, &[256, 256, 256, 256], &[(0, 0), (1, 1), (2, 2), (3, 3)], 1);
        let p = plan(&g);
        assert_eq!(p.arena_bytes, p.lower_bound_bytes);
        assert_eq!(p.arena_bytes, 2 * 1024);
    }
}
