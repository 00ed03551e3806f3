//! Random op graphs, built with the converter's `Graph` builder, planned, written, parsed
//! and run. For every graph:
//!
//! - the plan in the written file never gives two tensors that are live at the same op
//!   a shared byte (checked here from the parsed `.mote`, independently of the planner's
//!   own verifier);
//! - the interpreter writes nothing outside its arena: the arena is a slice of a larger
//!   buffer whose guard bytes before and after it must stay untouched;
//! - no op reads a byte nothing wrote: the outputs are bit-identical whether the arena
//!   starts zeroed or full of NaN garbage.

use mote_models::graph::TensorId;
use mote_models::host::AlignedBytes;
use mote_models::{ConvertOptions, Graph, HostTensor, WeightDType};
use mote_runtime::{Activation, DType, Interpreter, Model, Storage};
use proptest::prelude::*;

const GUARD: u8 = 0xA5;
const GUARD_BYTES: usize = 256;

/// One step of a random graph; the numbers pick operands and sizes.
#[derive(Clone, Debug)]
enum Step {
    MatMul { x: usize, n: usize, bias: bool, residual: bool, act: u32, f16: bool },
    Norm { x: usize, rms: bool },
    Add { a: usize, weight: bool },
    Mul { a: usize, b: usize },
    Glu { x: usize, act: u32 },
    Attention { x: usize, heads: usize, kv_div: usize, head_dim: usize, causal: bool },
    Concat { a: usize, b: usize },
    Select { x: usize, start: usize, count: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let pick = any::<usize>();
    prop_oneof![
        (pick, 1usize..24, any::<bool>(), any::<bool>(), 0u32..9, any::<bool>())
            .prop_map(|(x, n, bias, residual, act, f16)| Step::MatMul { x, n, bias, residual, act, f16 }),
        (pick, any::<bool>()).prop_map(|(x, rms)| Step::Norm { x, rms }),
        (pick, any::<bool>()).prop_map(|(a, weight)| Step::Add { a, weight }),
        (pick, pick).prop_map(|(a, b)| Step::Mul { a, b }),
        (pick, 0u32..9).prop_map(|(x, act)| Step::Glu { x, act }),
        (pick, 1usize..4, 1usize..4, 1usize..6, any::<bool>())
            .prop_map(|(x, heads, kv_div, head_dim, causal)| Step::Attention { x, heads, kv_div, head_dim, causal }),
        (pick, pick).prop_map(|(a, b)| Step::Concat { a, b }),
        (pick, pick, pick).prop_map(|(x, start, count)| Step::Select { x, start, count }),
    ]
}

/// Deterministic weights in [-0.5, 0.5).
fn weight(g: &mut Graph, name: &str, shape: Vec<usize>, f16: bool, seed: u64) -> TensorId {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let dtype = if f16 { DType::F16 } else { DType::F32 };
    g.weight_from(name, &HostTensor::f32(shape, data), dtype).expect("finite weights")
}

/// Builds the graph; every step that does not fit the operands it picked is skipped.
fn build(rows: usize, width: usize, steps: &[Step], extra_output: usize) -> Graph {
    let mut g = Graph::new("random", String::new(), WeightDType::F16);
    let x = g.input("x", vec![rows, width]);
    let mut pool: Vec<TensorId> = vec![x];
    let shape = |g: &Graph, t: TensorId| (g.tensor(t).rows(), g.tensor(t).cols());
    for (i, s) in steps.iter().enumerate() {
        let name = format!("t{i}");
        let pick = |k: usize| pool[k % pool.len()];
        let seed = i as u64 + 1;
        let out = match *s {
            Step::MatMul { x, n, bias, residual, act, f16 } => {
                let x = pick(x);
                let (m, k) = shape(&g, x);
                let w = weight(&mut g, &format!("{name}.w"), vec![n, k], f16, seed);
                let b = bias.then(|| weight(&mut g, &format!("{name}.b"), vec![n], false, seed + 7));
                let r = if residual { pool.iter().copied().find(|&t| shape(&g, t) == (m, n)) } else { None };
                let act = Activation::from_code(act).unwrap_or(Activation::None);
                g.matmul(&name, x, w, b, r, act)
            }
            Step::Norm { x, rms } => {
                let x = pick(x);
                let dim = g.tensor(x).cols();
                let gamma = weight(&mut g, &format!("{name}.g"), vec![dim], false, seed);
                if rms {
                    g.rms_norm(&name, x, gamma, 1e-5)
                } else {
                    let beta = weight(&mut g, &format!("{name}.b"), vec![dim], false, seed + 3);
                    g.layer_norm(&name, x, gamma, Some(beta), 1e-5)
                }
            }
            Step::Add { a, weight: w } => {
                let a = pick(a);
                let (r, c) = shape(&g, a);
                let b = if w {
                    weight(&mut g, &format!("{name}.b"), vec![r, c], true, seed)
                } else {
                    match pool.iter().copied().find(|&t| t != a && shape(&g, t) == (r, c)) {
                        Some(b) => b,
                        None => continue,
                    }
                };
                g.add(&name, a, b)
            }
            Step::Mul { a, b } => {
                let (a, b) = (pick(a), pick(b));
                if shape(&g, a) != shape(&g, b) {
                    continue;
                }
                g.mul(&name, a, b, None)
            }
            Step::Glu { x, act } => {
                let x = pick(x);
                if !g.tensor(x).cols().is_multiple_of(2) {
                    continue;
                }
                g.glu(&name, x, Activation::from_code(act).unwrap_or(Activation::None))
            }
            Step::Attention { x, heads, kv_div, head_dim, causal } => {
                let x = pick(x);
                let kv_heads = if heads % kv_div == 0 { heads / kv_div } else { heads };
                // A projection to the fused [q | k | v] width, then attention over it.
                let fused = (heads + 2 * kv_heads) * head_dim;
                let k = g.tensor(x).cols();
                let w = weight(&mut g, &format!("{name}.qkv"), vec![fused, k], true, seed);
                let qkv = g.matmul(&format!("{name}.qkv"), x, w, None, None, Activation::None);
                pool.push(qkv);
                g.attention(&name, qkv, heads, kv_heads, head_dim, causal, None, None)
            }
            Step::Concat { a, b } => {
                let (a, b) = (pick(a), pick(b));
                if g.tensor(a).cols() != g.tensor(b).cols() || g.tensor(a).rows() + g.tensor(b).rows() > 16 {
                    continue;
                }
                g.concat_rows(&name, a, b)
            }
            Step::Select { x, start, count } => {
                let x = pick(x);
                let rows = g.tensor(x).rows();
                let start = start % rows;
                let count = 1 + count % (rows - start);
                g.select_rows(&name, x, start, count)
            }
        };
        pool.push(out);
    }
    let last = *pool.last().expect("the input at least");
    let other = pool[extra_output % pool.len()];
    if last == x {
        // No op was added: one that copies the input through a norm.
        let gamma = weight(&mut g, "g", vec![width], false, 99);
        let y = g.rms_norm("y", x, gamma, 1e-5);
        g.output(y, "y");
    } else {
        g.output(last, "y");
        if other != last && other != x {
            g.output(other, "z");
        }
    }
    g
}

/// The op time span `[first, last]` over which each scratch tensor's bytes must hold:
/// from the op that writes it (or before op 0 for inputs) to the last op that reads it
/// (or past the end for outputs).
fn live_ranges(m: &Model<'_>) -> Vec<Option<(usize, usize)>> {
    let end = m.op_count() + 1;
    let mut live: Vec<Option<(usize, usize)>> = vec![None; m.tensor_count()];
    let mut touch = |id: u32, t: usize| {
        let l = live[id as usize].get_or_insert((t, t));
        *l = (l.0.min(t), l.1.max(t));
    };
    for i in 0..m.input_count() {
        touch(m.input_id(i).unwrap(), 0);
    }
    for i in 0..m.op_count() {
        let op = m.op(i).unwrap();
        touch(op.output, i + 1);
        for &id in op.inputs.iter().filter(|&&id| id != mote_runtime::format::NONE) {
            touch(id, i + 1);
        }
    }
    for i in 0..m.output_count() {
        touch(m.output_id(i).unwrap(), end);
    }
    for (id, l) in live.iter_mut().enumerate() {
        if m.tensor(id).unwrap().storage != Storage::Arena {
            *l = None;
        }
    }
    live
}

/// Runs the model in an arena of exactly `arena_bytes` between guard bytes, with the
/// scratch bytes first set to `fill`; returns the outputs.
fn run_guarded(m: &Model<'_>, input: &[f32], fill: u8) -> Vec<Vec<f32>> {
    let arena_bytes = m.arena_bytes();
    let mut buf = vec![GUARD; GUARD_BYTES + arena_bytes + GUARD_BYTES + 64];
    let start = GUARD_BYTES + buf[GUARD_BYTES..].as_ptr().align_offset(64);
    buf[start..start + arena_bytes].fill(fill);
    let mut outputs = Vec::new();
    {
        let arena = &mut buf[start..start + arena_bytes];
        let mut it = Interpreter::new(m, arena).expect("an arena of exactly arena_bytes binds");
        for _ in 0..2 {
            it.set_input("x", input).unwrap();
            it.invoke().unwrap();
            outputs = (0..m.output_count()).map(|i| it.output(m.output(i).unwrap().name).unwrap().to_vec()).collect();
        }
    }
    assert!(buf[..start].iter().all(|&b| b == GUARD), "a byte before the arena was written");
    assert!(buf[start + arena_bytes..].iter().all(|&b| b == GUARD), "a byte after the arena was written");
    outputs
}

fn cases() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 256;
    }
    c
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn random_graphs_stay_in_their_arena(
        rows in 1usize..6,
        width in 1usize..20,
        steps in prop::collection::vec(step(), 0..24),
        extra_output in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let g = build(rows, width, &steps, extra_output);
        let c = mote_models::compile(&g, &ConvertOptions::default()).expect("a well-formed graph compiles");
        prop_assert!(c.arena_bytes >= c.lower_bound_bytes);
        let buf = AlignedBytes::new(&c.bytes);
        let m = Model::parse(&buf).expect("the converter's output parses");

        // No two tensors live at the same op share a byte.
        let live = live_ranges(&m);
        for a in 0..m.tensor_count() {
            for b in a + 1..m.tensor_count() {
                let (Some(la), Some(lb)) = (live[a], live[b]) else { continue };
                let (ta, tb) = (m.tensor(a).unwrap(), m.tensor(b).unwrap());
                let together = la.0 <= lb.1 && lb.0 <= la.1;
                let share = ta.offset < tb.offset + tb.bytes && tb.offset < ta.offset + ta.bytes;
                prop_assert!(!(together && share), "{} and {} are live together and overlap", ta.name, tb.name);
            }
        }

        let input: Vec<f32> = (0..rows * width).map(|i| ((i as u64 ^ seed) % 17) as f32 / 8.0 - 1.0).collect();
        let clean = run_guarded(&m, &input, 0x00);
        let dirty = run_guarded(&m, &input, 0xFF); // every f32 a NaN
        for (c, d) in clean.iter().zip(&dirty) {
            let (c, d): (Vec<u32>, Vec<u32>) = (c.iter().map(|v| v.to_bits()).collect(), d.iter().map(|v| v.to_bits()).collect());
            prop_assert_eq!(c, d, "an op read arena bytes nothing wrote");
        }
    }
}
