//! Choosing the next token from logits without a heap: greedy, or sampled with
//! temperature, top-k and top-p (nucleus) from a seeded generator.

/// Most candidates a [`Sampler`] keeps (a fixed array on the stack, 512 bytes). Top-p
/// works within them: probability mass past the `MAX_TOP_K` most likely tokens is
/// dropped, which is what top-k 64 does anyway.
pub const MAX_TOP_K: usize = 64;

/// Picks tokens from logits. `temperature <= 0` or `top_k == 1` is greedy (argmax).
#[derive(Clone, Debug)]
pub struct Sampler {
    state: u64,
    /// Divides the logits before the softmax; 0 means greedy.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: `MAX_TOP_K`; capped at it).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`
    /// (1.0: all of the top-k).
    pub top_p: f32,
}

impl Sampler {
    /// Always the most likely token.
    pub fn greedy() -> Self {
        Sampler { state: 1, temperature: 0.0, top_k: 1, top_p: 1.0 }
    }

    /// A seeded sampler; the same seed and logits give the same tokens.
    pub fn new(seed: u64, temperature: f32, top_k: usize, top_p: f32) -> Self {
        // splitmix64 of the seed, so that small seeds still give a well-mixed state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let state = (z ^ (z >> 31)) | 1;
        Sampler { state, temperature, top_k, top_p }
    }

    /// Uniform in [0, 1) (xorshift64*).
    fn uniform(&mut self) -> f32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 40) as f32 / (1u64 << 24) as f32
    }

    /// The index of the chosen token (0 for empty logits). NaN logits are never chosen
    /// unless all are NaN.
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        // NaN or non-positive temperature: greedy.
        if self.temperature.is_nan() || self.temperature <= 0.0 || self.top_k == 1 {
            return argmax(logits);
        }
        let k = if self.top_k == 0 { MAX_TOP_K } else { self.top_k.min(MAX_TOP_K) };
        // The k largest logits, sorted descending, by insertion.
        let mut cand = [(f32::NEG_INFINITY, 0u32); MAX_TOP_K];
        let mut len = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l.is_nan() || (len == k && l <= cand[k - 1].0) {
                continue;
            }
            let mut at = len.min(k - 1);
            while at > 0 && cand[at - 1].0 < l {
                cand[at] = cand[at - 1];
                at -= 1;
            }
            cand[at] = (l, i as u32);
            len = (len + 1).min(k);
        }
        if len == 0 {
            return argmax(logits);
        }
        // Softmax with temperature over the candidates (probabilities overwrite logits).
        let max = cand[0].0;
        let mut sum = 0.0;
        for c in &mut cand[..len] {
            c.0 = mote_kernels::math::expf((c.0 - max) / self.temperature);
            sum += c.0;
        }
        // Top-p: the shortest prefix whose mass reaches top_p of the total.
        let mut keep = len;
        if self.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, c) in cand[..len].iter().enumerate() {
                acc += c.0;
                if acc >= self.top_p * sum {
                    keep = i + 1;
                    break;
                }
            }
        }
        let total: f32 = cand[..keep].iter().map(|c| c.0).sum();
        let mut r = self.uniform() * total;
        for c in &cand[..keep] {
            r -= c.0;
            if r < 0.0 {
                return c.1 as usize;
            }
        }
        cand[keep - 1].1 as usize
    }
}

/// Index of the largest logit (the first on ties; NaN skipped).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn freqs(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<f64> {
        let mut c = vec![0usize; logits.len()];
        for _ in 0..n {
            c[s.sample(logits)] += 1;
        }
        c.iter().map(|&x| x as f64 / n as f64).collect()
    }

    #[test]
    fn greedy_and_top1_take_the_argmax() {
        let logits = [0.1, 3.0, -1.0, 2.9, f32::NAN];
        assert_eq!(argmax(&logits), 1);
        assert_eq!(Sampler::greedy().sample(&logits), 1);
        let mut s = Sampler::new(7, 5.0, 1, 1.0);
        assert!((0..100).all(|_| s.sample(&logits) == 1));
        assert_eq!(Sampler::new(7, 1.0, 0, 1.0).sample(&[]), 0);
    }

    #[test]
    // Frequencies over tens of thousands of draws (many minutes under Miri); the seeded
    // tests, which Miri runs, cover the same code.
    #[cfg_attr(miri, ignore)]
    fn temperature_one_follows_the_softmax() {
        let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|x| x.ln()).collect();
        let f = freqs(&mut Sampler::new(42, 1.0, 0, 1.0), &logits, 40_000);
        for (got, want) in f.iter().zip([0.1, 0.2, 0.3, 0.4]) {
            assert!((got - want).abs() < 0.012, "{f:?}");
        }
    }

    #[test]
    // Frequencies over tens of thousands of draws (many minutes under Miri); the seeded
    // tests, which Miri runs, cover the same code.
    #[cfg_attr(miri, ignore)]
    fn top_k_and_top_p_cut_the_tail() {
        let logits: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|x| x.ln()).collect();
        // top-k 2: tokens 3 and 2 in the ratio 4:3.
        let f = freqs(&mut Sampler::new(1, 1.0, 2, 1.0), &logits, 20_000);
        assert_eq!((f[0], f[1]), (0.0, 0.0));
        assert!((f[3] - 4.0 / 7.0).abs() < 0.015, "{f:?}");
        // top-p 0.5: 0.4 < 0.5, 0.4 + 0.3 >= 0.5, so again tokens 3 and 2.
        let f = freqs(&mut Sampler::new(2, 1.0, 0, 0.5), &logits, 20_000);
        assert_eq!((f[0], f[1]), (0.0, 0.0));
        assert!((f[3] - 4.0 / 7.0).abs() < 0.015, "{f:?}");
        // top-p 0.3: token 3 alone.
        let f = freqs(&mut Sampler::new(3, 1.0, 0, 0.3), &logits, 1_000);
        assert_eq!(f[3], 1.0);
    }

    #[test]
    fn seeded_and_reproducible() {
        let logits: Vec<f32> = (0..200).map(|i| ((i * 37) % 199) as f32 * 0.02).collect(); // one maximum
        let run = |seed| {
            let mut s = Sampler::new(seed, 0.8, 40, 0.9);
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        // Low temperature concentrates on the best token.
        let mut cold = Sampler::new(9, 0.001, 0, 1.0);
        assert!((0..100).all(|_| cold.sample(&logits) == argmax(&logits)));
    }
}
