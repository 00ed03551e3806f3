//! The Cortex-M4F / M7 plug (Armv7E-M with a single-precision FPU): scalar FPU kernels,
//! register-tiled, with no vector unit to lean on.
//!
//! What the M4F has, and what these loops are written for: 32 single-precision registers,
//! `VFMA.F32` (one fused multiply-add per instruction), `VCVTB.F32.F16` (one f16 -> f32
//! conversion per instruction, which the nightly `f16` primitive lowers to; the `half`
//! crate's portable conversion costs a dozen integer instructions), `VLDR` with an
//! immediate offset. LLVM turns these loops into that code; `cargo xtask qemu --profile`
//! counts what they cost.
//!
//! The code is plain Rust (no `asm!`): it compiles and runs on every target, so the host's
//! tests run this plug bit for bit as the board does (`mul_add` is fused everywhere, f16
//! widening is exact everywhere, the order of every sum is fixed).
//!
//! - matmul (m >= 2): the weights of 4 output columns x 128 inputs are widened once into
//!   an f32 panel on the stack (`[k][4]`), then tiles of 4 rows x 4 columns run from it:
//!   per input, 4 x loads + 4 panel loads + 16 FMAs, 16 accumulators in registers.
//! - matvec (m = 1, decode): 4 weight rows at a time, each weight widened once.
//! - int8 / int4 matmul (`quant`'s blocks): m >= 2 dequantizes into the same f32 panel and
//!   runs the same tiles; m = 1 widens the bytes in registers, 4 rows at a time, a partial
//!   sum per block then its scale (the reference's order: the same bits).
//! - attention: the streaming (online) softmax over blocks of 8 keys: scores of a block,
//!   one rescale per block when the max grows, then the block's `p * v` sums. No score
//!   matrix; a polynomial exp instead of libm's.
//! - activations: the same polynomial exp / erf / tanh as the vector kernels, one lane.
//! - RoPE: cos / sin once per row and frequency (not once per head), by a Cody-Waite
//!   reduction and minimax polynomials instead of libm's per-call range reduction.

use crate::activation::Activation;
use crate::attention::AttentionShape;
use crate::quant::{BlockQ4, BlockQ8, QK, QWeights};
use crate::src::Src;
use crate::table::Kernels;

/// The table: the generic one with this module's entries.
pub(crate) const fn plug(mut k: Kernels) -> Kernels {
    k.name = "Armv7E-M FPU (Cortex-M4F / M7)";
    k.matmul = matmul;
    k.matmul_q = matmul_q;
    k.patch_embed = patch_embed;
    k.attention = attention;
    k.layer_norm = layer_norm;
    k.rms_norm = rms_norm;
    k.activation = activation;
    k.rope = rope;
    k.selective_scan = selective_scan;
    k
}

#[inline(always)]
pub(super) fn fma(a: f32, b: f32, c: f32) -> f32 {
    core::f32::math::mul_add(a, b, c)
}

/// A weight element, widened to f32.
pub(super) trait Weight: Copy {
    fn widen(self) -> f32;
}

impl Weight for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Weight for half::f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        // One VCVTB on an FPU with half-precision conversion (every Cortex-M4F / M7 / M55).
        f16::from_bits(self.to_bits()) as f32
    }
}

/// Columns per tile (and per panel).
const NR: usize = 4;
/// Rows per tile.
const MR: usize = 4;
/// Panel depth: 4 x 128 f32 = 2 KiB of stack.
const KC: usize = 128;

#[allow(clippy::too_many_arguments)]
#[inline(never)] // a table entry: one call per op, one copy of its code
fn matmul(
    x: &[f32],
    xs: usize,
    w: Src<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    linear(bias, residual, act, activation, |b, row| b.copy_to(row), out, n, |out| run(x, xs, w, k, out, m, k, n));
}

/// The patch embedding: the matmul's sums over gathered patches.
#[allow(clippy::too_many_arguments)]
#[inline(never)] // a table entry: one call per op, one copy of its code
#[optimize(size)] // once per image: the gather; the sums are `run`'s
fn patch_embed(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    dim: usize,
) {
    patch_embed_with(image, weight, bias, out, [c, h, w, p, dim], run);
}

/// Inputs per gathered block of patches: 256 f32, 1 KiB of stack.
const PATCH_BUF: usize = 256;

/// Patch embedding (kernel = stride = patch, `patch::ref_patch_embed`'s contract) as a
/// matmul: the pixels of up to 256 / (c * patch^2) patches are gathered (im2col) into a
/// stack block, at most 256 inputs of each, and `sums` adds block @ weight^T into the
/// tokens' rows, which start from the bias. `sums(x, xs, w, ws, out, m, k, n)` is a plug's
/// accumulating matmul: out[i, j] += x[i * xs..][..k] . w[j * ws..][..k].
///
/// The front (`patch::patch_embed`) checked every length: 0 < patch <= h, w; the image
/// holds c * h * w pixels, the weight dim * c * patch^2, out (h / patch) * (w / patch)
/// rows of dim.
#[allow(clippy::type_complexity)]
#[inline(always)]
pub(super) fn patch_embed_with(
    image: &[f32],
    weight: Src<'_>,
    bias: Option<Src<'_>>,
    out: &mut [f32],
    [c, h, w, p, dim]: [usize; 5],
    sums: impl Fn(&[f32], usize, Src<'_>, usize, &mut [f32], usize, usize, usize),
) {
    if dim == 0 || p == 0 {
        return;
    }
    for row in out.chunks_exact_mut(dim) {
        row.fill(0.0);
        if let Some(b) = bias {
            b.copy_to(row);
        }
    }
    let (pp, gw) = (p * p, w / p);
    let plen = c * pp;
    if plen == 0 || gw == 0 {
        return; // out = bias
    }
    let tokens = out.len() / dim;
    let kc = plen.min(PATCH_BUF); // inputs per block
    let g = PATCH_BUF / kc; // patches per block (>= 1)
    let mut buf = [0f32; PATCH_BUF];
    for t0 in (0..tokens).step_by(g) {
        let gt = g.min(tokens - t0);
        for k0 in (0..plen).step_by(kc) {
            let kn = kc.min(plen - k0);
            // buf[r * kn + e - k0] = pixel e (= (ci, ky, kx)) of patch t0 + r
            for (r, row) in buf.chunks_exact_mut(kn).take(gt).enumerate() {
                let (py, px) = ((t0 + r) / gw, (t0 + r) % gw);
                let (mut ci, mut ky, mut kx) = (k0 / pp, k0 % pp / p, k0 % p);
                for v in row.iter_mut() {
                    *v = image[(ci * h + py * p + ky) * w + px * p + kx];
                    kx += 1;
                    if kx == p {
                        (kx, ky) = (0, ky + 1);
                        if ky == p {
                            (ky, ci) = (0, ci + 1);
                        }
                    }
                }
            }
            let wk = weight.slice(k0, (dim - 1) * plen + kn);
            sums(&buf[..gt * kn], kn, wk, plen, &mut out[t0 * dim..(t0 + gt) * dim], gt, kn, dim);
        }
    }
}

/// out = act(bias + sums) + residual, rows of `n`: `sums` adds x @ w^T into out, which
/// starts from the bias; `activation` and `copy` (a bias into a row) are the plug's. (The
/// Arm plugs' matmuls share it.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn linear(
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    activation: fn(&mut [f32], Activation),
    copy: fn(&Src<'_>, &mut [f32]),
    out: &mut [f32],
    n: usize,
    sums: impl FnOnce(&mut [f32]),
) {
    if n == 0 {
        return;
    }
    // Without an activation the residual joins the bias before the sums: one pass less.
    let early = if act == Activation::None { residual } else { None };
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        match bias {
            Some(b) => copy(&b, row), // b holds n values (checked by the front)
            None => row.fill(0.0),
        }
        if let Some(r) = early {
            add_to(row, &r[i * n..][..n]);
        }
    }
    sums(out);
    if early.is_some() || (act == Activation::None && residual.is_none()) {
        return;
    }
    for (i, row) in out.chunks_exact_mut(n).enumerate() {
        activation(row, act);
        if let Some(r) = residual {
            add_to(row, &r[i * n..][..n]);
        }
    }
}

/// `o[i] += r[i]` (one copy for both places `linear` adds the residual).
#[inline(never)]
fn add_to(o: &mut [f32], r: &[f32]) {
    o.iter_mut().zip(r).for_each(|(o, r)| *o += r);
}

/// out[i, :] += x[i, :] @ w^T; out starts from the bias. Rows of x at stride xs, of w
/// at stride ws, k inputs of each. (Not generic over the weight type: one copy; only the
/// matvec and the panel's widening are per type.)
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn run(x: &[f32], xs: usize, w: Src<'_>, ws: usize, out: &mut [f32], m: usize, k: usize, n: usize) {
    if k == 0 {
        return;
    }
    if m == 1 {
        return match w {
            Src::F16(w) => matvec(&x[..k], w, ws, out, k),
            Src::F32(w) => matvec(&x[..k], w, ws, out, k),
        };
    }
    let mut panel = [0f32; KC * NR];
    for j0 in (0..n).step_by(NR) {
        let nr = NR.min(n - j0);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let p = &mut panel[..kc * NR];
            match w {
                Src::F16(w) => pack(w, ws, j0, k0, nr, p),
                Src::F32(w) => pack(w, ws, j0, k0, nr, p),
            }
            rows(x, xs, p, out, m, n, j0, k0);
        }
    }
}

/// panel[kk * NR + c] = w[j0 + c, k0 + kk] as f32 for kk < panel.len() / NR, zero past
/// the last of the nr columns.
#[inline(never)]
fn pack<W: Weight>(w: &[W], ws: usize, j0: usize, k0: usize, nr: usize, panel: &mut [f32]) {
    if nr < NR {
        return pack_tail(w, ws, j0, k0, nr, panel);
    }
    let kc = panel.len() / NR;
    let row = |c: usize| &w[(j0 + c) * ws + k0..][..kc];
    let ws = row(0).iter().zip(row(1)).zip(row(2).iter().zip(row(3)));
    for (p, ((a, b), (c, d))) in panel.chunks_exact_mut(NR).zip(ws) {
        p.copy_from_slice(&[a.widen(), b.widen(), c.widen(), d.widen()]);
    }
}

/// [`pack`] for the last columns of a matrix whose width is not a multiple of NR (at most
/// once per matmul: built for size).
#[inline(never)]
#[optimize(size)]
fn pack_tail<W: Weight>(w: &[W], ws: usize, j0: usize, k0: usize, nr: usize, panel: &mut [f32]) {
    for (kk, p) in panel.chunks_exact_mut(NR).enumerate() {
        for (c, p) in p.iter_mut().enumerate() {
            *p = if c < nr { w[(j0 + c) * ws + k0 + kk].widen() } else { 0.0 };
        }
    }
}

/// Every row tile of x against one panel (not generic over the weight type: one copy).
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn rows(x: &[f32], xs: usize, panel: &[f32], out: &mut [f32], m: usize, n: usize, j0: usize, k0: usize) {
    let kc = panel.len() / NR;
    let nr = NR.min(n - j0);
    let xrow = |i: usize| &x[i * xs + k0..][..kc];
    let mut i = 0;
    while i + MR <= m {
        let acc = tile4(xrow(i), xrow(i + 1), xrow(i + 2), xrow(i + 3), panel);
        for (r, a) in acc.iter().enumerate() {
            let o = &mut out[(i + r) * n + j0..][..nr];
            o.iter_mut().zip(a).for_each(|(o, a)| *o += a);
        }
        i += MR;
    }
    while i < m {
        let a = tile1(xrow(i), panel);
        let o = &mut out[i * n + j0..][..nr];
        o.iter_mut().zip(&a).for_each(|(o, a)| *o += a);
        i += 1;
    }
}

/// Inputs per step of the tiles' and the matvec's loops, unrolled in the source: the
/// firmware is built without LLVM's runtime unrolling (which copies every loop, and its
/// remainder, several times over), so the loops that carry the multiply-accumulates say
/// how far to unroll themselves.
const KU: usize = 4;

/// 4 rows x 4 columns over one panel: 16 accumulators.
#[inline(always)]
fn tile4(x0: &[f32], x1: &[f32], x2: &[f32], x3: &[f32], panel: &[f32]) -> [[f32; NR]; MR] {
    let mut a = [[0f32; NR]; MR];
    let main = x0.len() - x0.len() % KU;
    let xs = steps(x0, main).zip(steps(x1, main)).zip(steps(x2, main).zip(steps(x3, main)));
    for (p, ((v0, v1), (v2, v3))) in panel.chunks_exact(KU * NR).zip(xs) {
        for s in 0..KU {
            for c in 0..NR {
                let p = p[s * NR + c];
                a[0][c] = fma(v0[s], p, a[0][c]);
                a[1][c] = fma(v1[s], p, a[1][c]);
                a[2][c] = fma(v2[s], p, a[2][c]);
                a[3][c] = fma(v3[s], p, a[3][c]);
            }
        }
    }
    let xs = x0[main..].iter().zip(&x1[main..]).zip(x2[main..].iter().zip(&x3[main..]));
    for (p, ((&v0, &v1), (&v2, &v3))) in panel[main * NR..].chunks_exact(NR).zip(xs) {
        for c in 0..NR {
            a[0][c] = fma(v0, p[c], a[0][c]);
            a[1][c] = fma(v1, p[c], a[1][c]);
            a[2][c] = fma(v2, p[c], a[2][c]);
            a[3][c] = fma(v3, p[c], a[3][c]);
        }
    }
    a
}

/// x[..main] in steps of KU.
#[inline(always)]
fn steps<T>(x: &[T], main: usize) -> core::slice::ChunksExact<'_, T> {
    x[..main].chunks_exact(KU)
}

/// 1 row x 4 columns over one panel.
#[inline(always)]
fn tile1(x0: &[f32], panel: &[f32]) -> [f32; NR] {
    let mut a = [0f32; NR];
    let main = x0.len() - x0.len() % KU;
    for (p, v) in panel.chunks_exact(KU * NR).zip(steps(x0, main)) {
        for s in 0..KU {
            for c in 0..NR {
                a[c] = fma(v[s], p[s * NR + c], a[c]);
            }
        }
    }
    for (p, &v) in panel[main * NR..].chunks_exact(NR).zip(&x0[main..]) {
        for c in 0..NR {
            a[c] = fma(v, p[c], a[c]);
        }
    }
    a
}

/// One row: out[j] += x . w[j * ws..][..k], four weight rows at a time.
fn matvec<W: Weight>(x: &[f32], w: &[W], ws: usize, out: &mut [f32], k: usize) {
    let row = |j: usize| &w[j * ws..][..k];
    let mut outs = out.chunks_exact_mut(NR);
    let mut j = 0;
    for o in &mut outs {
        let (w0, w1, w2, w3) = (row(j), row(j + 1), row(j + 2), row(j + 3));
        j += NR;
        let mut a = [0f32; NR];
        let main = k - k % KU;
        let ws = steps(w0, main).zip(steps(w1, main)).zip(steps(w2, main).zip(steps(w3, main)));
        for (v, ((w0, w1), (w2, w3))) in steps(x, main).zip(ws) {
            for s in 0..KU {
                a[0] = fma(v[s], w0[s].widen(), a[0]);
                a[1] = fma(v[s], w1[s].widen(), a[1]);
                a[2] = fma(v[s], w2[s].widen(), a[2]);
                a[3] = fma(v[s], w3[s].widen(), a[3]);
            }
        }
        for d in main..k {
            for (a, w) in a.iter_mut().zip([w0, w1, w2, w3]) {
                *a = fma(x[d], w[d].widen(), *a);
            }
        }
        o.iter_mut().zip(&a).for_each(|(o, a)| *o += a);
    }
    for o in outs.into_remainder() {
        *o += x.iter().zip(row(j)).fold(0.0, |acc, (&v, w)| fma(v, w.widen(), acc));
        j += 1;
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(never)] // a table entry: one call per op, one copy of its code
fn matmul_q(
    x: &[f32],
    xs: usize,
    w: QWeights<'_>,
    bias: Option<Src<'_>>,
    residual: Option<&[f32]>,
    act: Activation,
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
) {
    linear(bias, residual, act, activation, |b, row| b.copy_to(row), out, n, |out| run_q(x, xs, w, out, m, k, n));
}

/// out[i, :] += x[i, :] @ w^T for quantized w `[n, k]` (the front checked the lengths:
/// k a multiple of QK, w n * k / QK blocks).
#[inline(never)]
fn run_q(x: &[f32], xs: usize, w: QWeights<'_>, out: &mut [f32], m: usize, k: usize, n: usize) {
    let nb = k / QK;
    if m == 1 {
        return match w {
            QWeights::Q8(b) => matvec_q(&x[..k], b, nb, out),
            QWeights::Q4(b) => matvec_q(&x[..k], b, nb, out),
        };
    }
    let mut panel = [0f32; KC * NR];
    for j0 in (0..n).step_by(NR) {
        let nr = NR.min(n - j0);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let p = &mut panel[..kc * NR];
            // KC is a multiple of QK: a panel holds whole blocks.
            for c in 0..NR {
                let blocks = (c < nr).then(|| w.blocks_range((j0 + c) * nb + k0 / QK, kc / QK));
                pack_q(blocks, p, c);
            }
            rows(x, xs, p, out, m, n, j0, k0);
        }
    }
}

/// Column `c` of a panel: panel[kk * NR + c] = weight kk of the blocks (0 without
/// blocks); the panel holds whole blocks (`KC` is a multiple of `QK`).
#[inline(never)]
fn pack_q(blocks: Option<QWeights<'_>>, panel: &mut [f32], c: usize) {
    let c = c % NR;
    let chunks = panel.chunks_exact_mut(NR * QK);
    match blocks {
        None => panel.iter_mut().skip(c).step_by(NR).for_each(|p| *p = 0.0),
        Some(QWeights::Q8(b)) => {
            for (blk, p) in b.iter().zip(chunks) {
                let d = blk.scale();
                for (p, q) in p.chunks_exact_mut(NR * KU).zip(blk.q.chunks_exact(KU)) {
                    for s in 0..KU {
                        p[s * NR + c] = d * f32::from(q[s]);
                    }
                }
            }
        }
        Some(QWeights::Q4(b)) => {
            const H: usize = QK / 2;
            for (blk, p) in b.iter().zip(chunks) {
                let (d, m) = (blk.scale(), blk.min());
                let (lo, hi) = p.split_at_mut(H * NR);
                let halves = lo.chunks_exact_mut(NR * KU).zip(hi.chunks_exact_mut(NR * KU));
                for ((lo, hi), q) in halves.zip(blk.q.chunks_exact(KU)) {
                    for s in 0..KU {
                        lo[s * NR + c] = fma(d, f32::from(q[s] & 0x0F), m);
                        hi[s * NR + c] = fma(d, f32::from(q[s] >> 4), m);
                    }
                }
            }
        }
    }
}

/// A quantized block, one weight at a time.
trait QBlock {
    /// Whether the block has an offset (int4: + m * Σ x).
    const OFFSET: bool;
    /// q[t] as f32.
    fn level(&self, t: usize) -> f32;
    /// acc + d * s (+ m * sx): the reference's order.
    fn finish(&self, s: f32, sx: f32, acc: f32) -> f32;
}

impl QBlock for BlockQ8 {
    const OFFSET: bool = false;
    #[inline(always)]
    fn level(&self, t: usize) -> f32 {
        f32::from(self.q[t])
    }
    #[inline(always)]
    fn finish(&self, s: f32, _: f32, acc: f32) -> f32 {
        fma(self.scale(), s, acc)
    }
}

impl QBlock for BlockQ4 {
    const OFFSET: bool = true;
    #[inline(always)]
    fn level(&self, t: usize) -> f32 {
        // Weights 0..16 in the low nibbles, 16..32 in the high ones.
        f32::from((self.q[t % (QK / 2)] >> (4 * (t / (QK / 2)))) & 0x0F)
    }
    #[inline(always)]
    fn finish(&self, s: f32, sx: f32, acc: f32) -> f32 {
        fma(self.scale(), s, fma(self.min(), sx, acc))
    }
}

/// One row: out[j] += x . w_j over quantized rows of nb blocks, four rows at a time (the
/// last ones in a group that repeats the last row). Per block, in the reference's order:
/// s = Σ q x, sx = Σ x, then acc = d * s (+ m * sx) + acc (the same bits). One loop over
/// the row in steps of KU inputs (its trip count is k / KU, not a constant LLVM would
/// unroll in full), a block's sums scaled when it ends.
#[inline(never)]
fn matvec_q<B: QBlock>(x: &[f32], w: &[B], nb: usize, out: &mut [f32]) {
    const STEPS: usize = QK / KU;
    let n = out.len();
    for (j0, o) in (0..n).step_by(NR).zip(out.chunks_mut(NR)) {
        let row = |c: usize| &w[(j0 + c).min(n - 1) * nb..][..nb];
        let b = [row(0), row(1), row(2), row(3)];
        let (mut a, mut s, mut sx) = ([0f32; NR], [0f32; NR], 0.0f32);
        for (g, xs) in x.as_chunks::<KU>().0.iter().enumerate() {
            let (bi, t) = (g / STEPS, g % STEPS * KU);
            for (u, &v) in xs.iter().enumerate() {
                if B::OFFSET {
                    sx += v;
                }
                for r in 0..NR {
                    s[r] = fma(b[r][bi].level(t + u), v, s[r]);
                }
            }
            if t + KU == QK {
                for r in 0..NR {
                    a[r] = b[r][bi].finish(s[r], sx, a[r]);
                }
                (s, sx) = ([0.0; NR], 0.0);
            }
        }
        o.iter_mut().zip(&a).for_each(|(o, a)| *o += a);
    }
}

#[inline(never)] // a table entry: one call per op, one copy of its code
fn layer_norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32) {
    norm(x, gamma, beta, out, dim, eps, false)
}

#[inline(never)] // a table entry: one call per op, one copy of its code
fn rms_norm(x: &[f32], gamma: Src<'_>, out: &mut [f32], dim: usize, eps: f32) {
    norm(x, gamma, None, out, dim, eps, true)
}

/// LayerNorm (`rms = false`: the mean, then the variance around it, as the reference) and
/// RMSNorm (`rms = true`, no beta), per row: the sums, then
/// out = (x - mean) * (1 / sqrt(var + eps)) * gamma + beta in one pass for f32 gamma and
/// beta (what the converter writes). f16 ones take a pass per factor, built for size.
/// (The front checked the lengths.)
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn norm(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], dim: usize, eps: f32, rms: bool) {
    let n = dim as f32;
    for (xr, or) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let (shift, var) = if rms {
            (0.0, fold(xr, |a, v| fma(v, v, a)) / n)
        } else {
            let mean = fold(xr, |a, v| a + v) / n;
            (mean, fold(xr, |a, v| fma(v - mean, v - mean, a)) / n)
        };
        let inv = 1.0 / crate::math::sqrtf(var + eps);
        match (gamma, beta) {
            (Src::F32(g), Some(Src::F32(b))) => {
                map4(or, xr, g, b, |v, g, b| fma((v - shift) * inv, g, b));
            }
            (Src::F32(g), None) => map4(or, xr, g, g, |v, g, _| (v - shift) * inv * g),
            _ => affine(xr, gamma, beta, or, shift, inv),
        }
    }
}

/// f(f(init, x[0]), x[1]) ... in order, KU elements per step.
#[inline(always)]
fn fold(x: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let main = x.len() - x.len() % KU;
    let a = steps(x, main).fold(0.0, |a, v| (0..KU).fold(a, |a, s| f(a, v[s])));
    x[main..].iter().fold(a, |a, &v| f(a, v))
}

/// o[i] = f(x[i], g[i], b[i]), KU elements per step.
#[inline(always)]
fn map4(o: &mut [f32], x: &[f32], g: &[f32], b: &[f32], f: impl Fn(f32, f32, f32) -> f32) {
    let main = o.len() - o.len() % KU;
    let (om, ot) = o.split_at_mut(main);
    for (o, (x, (g, b))) in om.chunks_exact_mut(KU).zip(steps(x, main).zip(steps(g, main).zip(steps(b, main)))) {
        for s in 0..KU {
            o[s] = f(x[s], g[s], b[s]);
        }
    }
    for (o, (x, (g, b))) in ot.iter_mut().zip(x[main..].iter().zip(g[main..].iter().zip(&b[main..]))) {
        *o = f(*x, *g, *b);
    }
}

/// out = (x - shift) * inv * gamma (+ beta) for gamma or beta in f16.
#[inline(never)]
#[optimize(size)]
fn affine(x: &[f32], gamma: Src<'_>, beta: Option<Src<'_>>, out: &mut [f32], shift: f32, inv: f32) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = (v - shift) * inv);
    gamma.zip_with(out, |o, g| o * g);
    if let Some(b) = beta {
        b.zip_with(out, |o, b| o + b);
    }
}

/// The vector kernels' exp / erf / tanh / activations on one lane.
mod lane {
    use core::simd::Simd;
    use core::simd::prelude::*;

    use crate::activation::Activation;

    type F1 = Simd<f32, 1>;

    #[inline(always)]
    fn fma1(a: F1, b: F1, c: F1) -> F1 {
        F1::splat(super::fma(a[0], b[0], c[0]))
    }

    #[inline(always)]
    fn recip1(x: F1) -> F1 {
        F1::splat(1.0) / x
    }

    crate::vmath::vector_math!(F1, 1, self::fma1, self::recip1);

    #[inline(always)]
    pub(crate) fn exp1(x: f32) -> f32 {
        exp(F1::splat(x))[0]
    }
}

pub(super) use lane::exp1;

#[inline(never)]
pub(super) fn activation(x: &mut [f32], act: Activation) {
    lane::activation_inplace(x, act)
}

/// Keys per block of the streaming softmax.
pub(super) const KB: usize = 8;

#[inline(never)] // a table entry: one call per op, one copy of its code
fn attention(q: &[f32], k: &[f32], v: &[f32], key_mask: Option<&[f32]>, out: &mut [f32], s: &AttentionShape) {
    streaming_attention(q, k, v, key_mask, out, s, dot, scores4, pv, scale_max, exps);
}

/// sc[b] *= scale over a block of nb scores; returns their max.
#[inline(always)]
pub(super) fn scale_max(sc: &mut [f32; KB], nb: usize, scale: f32) -> f32 {
    let mut bmax = f32::NEG_INFINITY;
    for sc in &mut sc[..nb] {
        *sc *= scale;
        if *sc > bmax {
            bmax = *sc;
        }
    }
    bmax
}

/// sc[b] = exp(sc[b] - max) over a block; returns their sum.
#[inline(always)]
fn exps(sc: &mut [f32; KB], nb: usize, max: f32) -> f32 {
    sc[..nb].iter_mut().fold(0.0, |sum, sc| {
        *sc = exp1(*sc - max);
        sum + *sc
    })
}

/// The streaming (online) softmax over blocks of [`KB`] keys, with the caller's
/// instruction set for `q . k` of one key (`dot`) and of four keys (`scores4`: q read once
/// for the four), for `o += Σ_b p[b] * v[b]` over a block (`pv`: o kept in registers
/// while the block's v rows stream past) and for the block's exponentials (`exps`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn streaming_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    key_mask: Option<&[f32]>,
    out: &mut [f32],
    s: &AttentionShape,
    dot: impl Fn(&[f32], &[f32]) -> f32,
    scores4: impl Fn(&[f32], [&[f32]; 4]) -> [f32; 4],
    pv: impl Fn(&mut [f32], &[f32], &[&[f32]]),
    scale_max: impl Fn(&mut [f32; KB], usize, f32) -> f32,
    exps: impl Fn(&mut [f32; KB], usize, f32) -> f32,
) {
    let hd = s.head_dim;
    let width = s.heads * hd;
    let group = s.heads / s.kv_heads;
    for (i, out_row) in out.chunks_exact_mut(width).take(s.q_rows).enumerate() {
        let visible = if s.causal { s.kv_rows.min(s.q_pos0 + i + 1) } else { s.kv_rows };
        for (h, o) in out_row.chunks_exact_mut(hd).enumerate() {
            let qh = &q[i * s.q_stride + h * hd..][..hd];
            let col = (h / group) * hd;
            o.fill(0.0);
            let (mut max, mut sum) = (f32::NEG_INFINITY, 0.0f32);
            let mut j = 0;
            while j < visible {
                // The next block: up to KB keys that are not masked out.
                let mut ks: [&[f32]; KB] = [&[]; KB];
                let mut vs: [&[f32]; KB] = [&[]; KB];
                let mut nb = 0;
                while j < visible && nb < KB {
                    if key_mask.is_none_or(|m| m[j] != 0.0) {
                        ks[nb] = &k[j * s.kv_stride + col..][..hd];
                        vs[nb] = &v[j * s.kv_stride + col..][..hd];
                        nb += 1;
                    }
                    j += 1;
                }
                if nb == 0 {
                    break;
                }
                let mut sc = [0f32; KB];
                let mut b = 0;
                while b + 4 <= nb {
                    sc[b..b + 4].copy_from_slice(&scores4(qh, [ks[b], ks[b + 1], ks[b + 2], ks[b + 3]]));
                    b += 4;
                }
                for b in b..nb {
                    sc[b] = dot(qh, ks[b]);
                }
                let bmax = scale_max(&mut sc, nb, s.scale);
                if bmax > max {
                    // The max grew: rescale what was accumulated (nothing yet in the first
                    // block, where max is -inf).
                    if max != f32::NEG_INFINITY {
                        let corr = exp1(max - bmax);
                        sum *= corr;
                        o.iter_mut().for_each(|o| *o *= corr);
                    }
                    max = bmax;
                }
                sum += exps(&mut sc, nb, max);
                pv(o, &sc[..nb], &vs[..nb]);
            }
            if sum > 0.0 {
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|o| *o *= inv);
            }
        }
    }
}

/// q . k of four keys, q read once; KU dimensions per step.
#[inline(always)]
fn scores4(q: &[f32], k: [&[f32]; 4]) -> [f32; 4] {
    let mut a = [0f32; 4];
    let main = q.len() - q.len() % KU;
    let ks = steps(k[0], main).zip(steps(k[1], main)).zip(steps(k[2], main).zip(steps(k[3], main)));
    for (qd, ((k0, k1), (k2, k3))) in steps(q, main).zip(ks) {
        for s in 0..KU {
            a[0] = fma(qd[s], k0[s], a[0]);
            a[1] = fma(qd[s], k1[s], a[1]);
            a[2] = fma(qd[s], k2[s], a[2]);
            a[3] = fma(qd[s], k3[s], a[3]);
        }
    }
    for d in main..q.len() {
        for (a, k) in a.iter_mut().zip(&k) {
            *a = fma(q[d], k[d], *a);
        }
    }
    a
}

/// o += Σ_b p[b] * v[b], eight dimensions of o in registers at a time, then four (head
/// sizes such as 12, 20 or 24), then one.
#[inline(always)]
pub(super) fn pv(o: &mut [f32], p: &[f32], vs: &[&[f32]]) {
    let len = o.len();
    let body = len - len % 8;
    let (head, tail) = o.split_at_mut(body);
    for (c, oc) in head.chunks_exact_mut(8).enumerate() {
        pv_lanes::<8>(oc.try_into().expect("8 lanes"), p, vs, 8 * c);
    }
    let (four, rest) = tail.split_at_mut(tail.len() - tail.len() % 4);
    if let Ok(oc) = <&mut [f32; 4]>::try_from(four) {
        pv_lanes::<4>(oc, p, vs, body);
    }
    let c0 = len - rest.len();
    for (d, od) in rest.iter_mut().enumerate() {
        for (&pb, vb) in p.iter().zip(vs) {
            *od = fma(pb, vb[c0 + d], *od);
        }
    }
}

/// o += Σ_b p[b] * v[b][c0..c0 + C], the C sums in registers.
#[inline(always)]
fn pv_lanes<const C: usize>(o: &mut [f32; C], p: &[f32], vs: &[&[f32]], c0: usize) {
    let mut acc = *o;
    for (&pb, vb) in p.iter().zip(vs) {
        let vc: &[f32; C] = vb[c0..c0 + C].try_into().expect("C lanes");
        for l in 0..C {
            acc[l] = fma(pb, vc[l], acc[l]);
        }
    }
    *o = acc;
}

/// q . k on two accumulators.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (mut s0, mut s1) = (0.0f32, 0.0f32);
    let mut pa = a.chunks_exact(2);
    let mut pb = b.chunks_exact(2);
    for (x, y) in (&mut pa).zip(&mut pb) {
        s0 = fma(x[0], y[0], s0);
        s1 = fma(x[1], y[1], s1);
    }
    if let (Some(x), Some(y)) = (pa.remainder().first(), pb.remainder().first()) {
        s0 = fma(*x, *y, s0);
    }
    s0 + s1
}

#[allow(clippy::too_many_arguments)]
#[inline(never)] // a table entry: one call per op, one copy of its code
fn selective_scan(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: Src<'_>,
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    match a_d {
        Src::F32(a) => scan(x, dt, bc, z, a, state, out, t, e, n),
        Src::F16(a) => scan(x, dt, bc, z, a, state, out, t, e, n),
    }
}

/// `ref_selective_scan` with the polynomial exp for exp(Δ A) (one per channel, state and
/// step: the scan's cost) and fused multiply-adds; softplus and SiLU (one per channel and
/// step) stay libm's.
#[allow(clippy::too_many_arguments)]
fn scan<W: Weight>(
    x: &[f32],
    dt: &[f32],
    bc: &[f32],
    z: &[f32],
    a_d: &[W],
    state: &mut [f32],
    out: &mut [f32],
    t: usize,
    e: usize,
    n: usize,
) {
    for i in 0..t {
        let (b, c) = bc[i * 2 * n..][..2 * n].split_at(n);
        for ch in 0..e {
            let xi = x[i * e + ch];
            let delta = crate::activation::softplus(dt[i * e + ch]);
            let dx = delta * xi;
            let (a, d) = a_d[ch * (n + 1)..][..n + 1].split_at(n);
            let h = &mut state[ch * n..][..n];
            let mut y = 0.0f32;
            for (((h, a), &b), &c) in h.iter_mut().zip(a).zip(b).zip(c) {
                *h = fma(exp1(delta * a.widen()), *h, dx * b);
                y = fma(c, *h, y);
            }
            y = fma(d[0].widen(), xi, y);
            out[i * e + ch] = y * crate::activation::silu(z[i * e + ch]);
        }
    }
}

/// (sin x, cos x): x = n pi/2 + r by a three-part Cody-Waite reduction with fused
/// multiply-adds (exact enough for |x| < 2^16: absolute error below 2e-7), then Cephes'
/// minimax polynomials on |r| <= pi/4. Larger |x| and NaN take libm.
fn sincos(x: f32) -> (f32, f32) {
    if x.is_nan() || x.abs() >= 65536.0 {
        return (crate::math::sinf(x), crate::math::cosf(x));
    }
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    const P1: f32 = 1.570_796_4; // pi/2 in three f32 parts
    const P2: f32 = -4.371_139e-8;
    const P3: f32 = -1.715_478_6e-15;
    let t = fma(x, core::f32::consts::FRAC_2_PI, MAGIC);
    let n = t - MAGIC;
    let quadrant = t.to_bits().wrapping_sub(MAGIC.to_bits()) & 3;
    let r = fma(-n, P3, fma(-n, P2, fma(-n, P1, x)));
    let z = r * r;
    let sin = fma(r * z, fma(z, fma(z, -1.951_529_6e-4, 8.332_161e-3), -1.666_665_5e-1), r);
    let cos = fma(z * z, fma(z, fma(z, 2.443_315_7e-5, -1.388_731_6e-3), 4.166_664_6e-2), fma(-0.5, z, 1.0));
    match quadrant {
        0 => (sin, cos),
        1 => (cos, -sin),
        2 => (-sin, -cos),
        _ => (-cos, sin),
    }
}

/// Frequencies per batch of cos / sin values.
const RB: usize = 32;

#[inline(never)] // a table entry: one call per op, one copy of its code
fn rope(x: &mut [f32], rows: usize, row_stride: usize, heads: usize, head_dim: usize, inv_freq: &[f32], pos0: usize) {
    let half = head_dim / 2;
    if half == 0 || row_stride == 0 {
        return;
    }
    for (i, row) in x.chunks_exact_mut(row_stride).take(rows).enumerate() {
        let pos = (pos0 + i) as f32;
        for (b, freqs) in inv_freq[..half].chunks(RB).enumerate() {
            let (mut cos, mut sin) = ([0f32; RB], [0f32; RB]);
            for ((c, s), &f) in cos.iter_mut().zip(&mut sin).zip(freqs) {
                (*s, *c) = sincos(pos * f);
            }
            let j0 = b * RB;
            for head in row.chunks_exact_mut(head_dim).take(heads) {
                let (lo, hi) = head.split_at_mut(half);
                let pairs = lo[j0..].iter_mut().zip(&mut hi[j0..]);
                for ((a, b), (&c, &s)) in pairs.zip(cos.iter().zip(&sin)).take(freqs.len()) {
                    let (x0, x1) = (*a, *b);
                    *a = x0 * c - x1 * s;
                    *b = x1 * c + x0 * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_matches_f64() {
        let mut worst = 0f64;
        for i in 0..200_000 {
            let x = (i as f32 - 100_000.0) * 0.3271;
            let (s, c) = sincos(x);
            let xd = f64::from(x);
            worst = worst.max((f64::from(s) - xd.sin()).abs()).max((f64::from(c) - xd.cos()).abs());
        }
        assert!(worst < 3e-7, "sincos: worst abs error {worst:e}");
        for x in [f32::NAN, f32::INFINITY, 1e9] {
            let (s, c) = sincos(x);
            assert_eq!(s.to_bits(), crate::math::sinf(x).to_bits());
            assert_eq!(c.to_bits(), crate::math::cosf(x).to_bits());
        }
    }
}
