//! The CLI contract on bad input: a non-zero exit and one line on stderr that names the
//! problem; never a panic or a backtrace.

use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn golden(name: &str) -> PathBuf {
    root().join("tests/data/vit").join(name)
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mote-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the xtask binary: (success, stdout, stderr).
fn xtask(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(args).env("RUST_BACKTRACE", "1").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Asserts a failure with one stderr line containing every one of `needles`.
fn fails_with(args: &[&str], needles: &[&str]) {
    let (ok, _, err) = xtask(args);
    assert!(!ok, "{args:?} succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace") && !err.contains("internal error"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Rewrites model.safetensors in `dir`, letting `edit` change the (name, dtype, shape, bytes) list.
fn rewrite_checkpoint(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut ts: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut ts);
    let views: Vec<(String, TensorView<'_>)> =
        ts.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
}

fn converted(test: &str) -> (PathBuf, PathBuf) {
    let d = scratch(test);
    let m = d.join("m.mote");
    let (ok, _, err) = xtask(&["convert", golden("vit_a").to_str().unwrap(), "-o", m.to_str().unwrap()]);
    assert!(ok, "{err}");
    (d, m)
}

#[test]
fn convert_infer_validate_happy_path() {
    let (d, m) = converted("happy");
    let inputs = golden("vit_a").join("inputs.safetensors");
    let out = d.join("out.safetensors");
    let (ok, stdout, err) =
        xtask(&["infer", m.to_str().unwrap(), "--input", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(stdout.contains("logits [3, 5]"), "{stdout}");
    let expected = golden("vit_a").join("expected.safetensors");
    let (ok, stdout, err) = xtask(&[
        "validate",
        m.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--reference",
        expected.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{err}");
    assert!(stdout.contains("logits") && stdout.contains("3/3"), "{stdout}");
    let (ok, stdout, _) = xtask(&["inspect", m.to_str().unwrap()]);
    assert!(ok && stdout.contains("ViTForImageClassification") && stdout.contains("Attention"), "{stdout}");
}

#[test]
fn validate_fails_against_wrong_reference() {
    let (_, m) = converted("wrongref");
    let inputs = golden("vit_a").join("inputs.safetensors");
    // vit_a's inputs against its own outputs pass; against shuffled outputs they must not.
    let d = scratch("wrongref-data");
    let exp =
        safetensors::SafeTensors::deserialize(&std::fs::read(golden("vit_a").join("expected.safetensors")).unwrap())
            .unwrap()
            .tensor("logits")
            .unwrap()
            .data()
            .to_vec();
    let mut vals: Vec<f32> = bytemuck_cast(&exp);
    vals.reverse();
    let raw: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![3, 5], &raw).unwrap();
    let wrong = d.join("wrong.safetensors");
    std::fs::write(&wrong, safetensors::serialize([("logits", view)], None).unwrap()).unwrap();
    let (ok, stdout, err) = xtask(&[
        "validate",
        m.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--reference",
        wrong.to_str().unwrap(),
    ]);
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("FAIL") && err.contains("cosine"), "{stdout}{err}");
}

fn bytemuck_cast(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn unknown_architecture_is_named_with_the_supported_list() {
    let d = scratch("arch");
    copy_dir(&golden("vit_a"), &d);
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    v["architectures"] = serde_json::json!(["BloomForCausalLM"]);
    std::fs::write(d.join("config.json"), v.to_string()).unwrap();
    fails_with(
        &["convert", d.to_str().unwrap(), "-o", "/dev/null"],
        &["BloomForCausalLM", "ViTForImageClassification", "ViTModel"],
    );
}

#[test]
fn missing_tensor_is_named() {
    let d = scratch("missing");
    copy_dir(&golden("vit_a"), &d);
    rewrite_checkpoint(&d, |ts| ts.retain(|t| t.0 != "classifier.bias"));
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["classifier.bias"]);
}

#[test]
fn wrong_tensor_shape_is_named() {
    let d = scratch("shape");
    copy_dir(&golden("vit_a"), &d);
    rewrite_checkpoint(&d, |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "classifier.weight").unwrap();
        t.2 = vec![4, 32];
        t.3.truncate(4 * 32 * 4);
    });
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["classifier.weight", "[4, 32]", "[5, 32]"]);
}

#[test]
fn wrong_tensor_dtype_is_named() {
    let d = scratch("dtype");
    copy_dir(&golden("vit_a"), &d);
    rewrite_checkpoint(&d, |ts| {
        let t = ts.iter_mut().find(|t| t.0 == "classifier.weight").unwrap();
        t.1 = Dtype::U8;
        t.3.truncate(5 * 32);
    });
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["classifier.weight", "dtype U8"]);
}

#[test]
fn truncated_safetensors() {
    let d = scratch("truncst");
    copy_dir(&golden("vit_a"), &d);
    let p = d.join("model.safetensors");
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() / 2]).unwrap();
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["model.safetensors", "safetensors"]);
    std::fs::write(&p, &b[..5]).unwrap();
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["model.safetensors"]);
}

#[test]
fn missing_directory_or_config() {
    fails_with(&["convert", "/nonexistent/model", "-o", "/dev/null"], &["/nonexistent/model"]);
    let d = scratch("noconfig");
    fails_with(&["convert", d.to_str().unwrap(), "-o", "/dev/null"], &["config.json"]);
}

#[test]
fn truncated_and_corrupted_mote() {
    let (d, m) = converted("mote");
    let inputs = golden("vit_a").join("inputs.safetensors");
    let out = d.join("o.safetensors");
    let b = std::fs::read(&m).unwrap();
    let t = d.join("t.mote");
    std::fs::write(&t, &b[..b.len() - 100]).unwrap();
    fails_with(
        &["infer", t.to_str().unwrap(), "--input", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &["truncated"],
    );
    let mut c = b.clone();
    c[b.len() / 2] ^= 0x10;
    std::fs::write(&t, &c).unwrap();
    fails_with(
        &["infer", t.to_str().unwrap(), "--input", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &["checksum"],
    );
    std::fs::write(&t, b"not a model at all, just some text that is long enough for a header........").unwrap();
    fails_with(&["inspect", t.to_str().unwrap()], &["not a .mote file"]);
}

#[test]
fn wrong_input_name_or_shape() {
    let (d, m) = converted("input");
    let out = d.join("o.safetensors");
    let raw = vec![0u8; 3 * 16 * 16 * 4];
    let write = |name: &str, shape: Vec<usize>, file: &str| {
        let n: usize = shape.iter().product();
        let view = TensorView::new(Dtype::F32, shape, &raw[..n * 4]).unwrap();
        let p = d.join(file);
        std::fs::write(&p, safetensors::serialize([(name, view)], None).unwrap()).unwrap();
        p
    };
    let wrong_name = write("pixels", vec![1, 3, 16, 16], "a.safetensors");
    fails_with(
        &["infer", m.to_str().unwrap(), "--input", wrong_name.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &["pixel_values", "pixels"],
    );
    let wrong_shape = write("pixel_values", vec![1, 3, 8, 32], "b.safetensors");
    fails_with(
        &["infer", m.to_str().unwrap(), "--input", wrong_shape.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &["pixel_values", "[1, 3, 8, 32]", "[1, 3, 16, 16]"],
    );
    let missing = d.join("none.safetensors");
    fails_with(
        &["infer", m.to_str().unwrap(), "--input", missing.to_str().unwrap(), "--output", out.to_str().unwrap()],
        &["none.safetensors"],
    );
}

#[test]
fn arena_too_small_reports_needed_and_available() {
    let (d, m) = converted("arena");
    let inputs = golden("vit_a").join("inputs.safetensors");
    let out = d.join("o.safetensors");
    fails_with(
        &[
            "infer",
            m.to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--arena-bytes",
            "1000",
        ],
        &["arena too small", "needed", "available 1000"],
    );
    // The exact planned size is enough.
    let (_, stdout, _) = xtask(&["inspect", m.to_str().unwrap()]);
    let arena = stdout.lines().find(|l| l.starts_with("arena bytes")).unwrap();
    let n: String = arena.split_whitespace().nth(2).unwrap().replace(',', "");
    let (ok, _, err) = xtask(&[
        "infer",
        m.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--arena-bytes",
        &n,
    ]);
    assert!(ok, "{err}");
}

#[test]
fn budgets_fail_early() {
    let d = scratch("budget");
    fails_with(
        &["convert", golden("vit_a").to_str().unwrap(), "-o", d.join("m.mote").to_str().unwrap(), "--max-arena", "4K"],
        &["arena", "budget"],
    );
    fails_with(
        &["convert", golden("vit_a").to_str().unwrap(), "-o", d.join("m.mote").to_str().unwrap(), "--max-flash", "10K"],
        &["flash", "budget"],
    );
}

/// Reads one tensor of a safetensors file as i64 values (I64) or f32 values (F32).
fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&b).unwrap();
    let t = st.tensor(name).unwrap();
    let v = match t.dtype() {
        Dtype::I64 => t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        Dtype::F32 => t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        d => panic!("{d:?}"),
    };
    (t.shape().to_vec(), v)
}

fn transformer_golden(family: &str, name: &str) -> PathBuf {
    root().join("tests/data").join(family).join(name)
}

#[test]
fn infer_generate_writes_the_greedy_tokens_of_transformers() {
    let d = scratch("infergen");
    let g = transformer_golden("llama", "llama_b");
    let m = d.join("m.mote");
    let (ok, stdout, err) = xtask(&["convert", g.to_str().unwrap(), "-o", m.to_str().unwrap(), "--chunk", "4"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("KV cache bytes") && stdout.contains("tokens per call   4"), "{stdout}");
    let out = d.join("out.safetensors");
    let inputs = g.join("inputs.safetensors");
    let (ok, stdout, err) = xtask(&[
        "infer",
        m.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--generate",
        "16",
    ]);
    assert!(ok, "{err}");
    assert!(stdout.contains("greedy_tokens [1, 16]") && stdout.contains("logits [1, 10, 96]"), "{stdout}");
    let (shape, got) = read_tensor(&out, "greedy_tokens");
    let (_, want) = read_tensor(&g.join("expected.safetensors"), "greedy_tokens");
    assert_eq!(shape, vec![1, 16]);
    assert_eq!(got, want);
    // A prompt plus generation past the context (64) is refused up front.
    fails_with(
        &[
            "infer",
            m.to_str().unwrap(),
            "--input",
            inputs.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--generate",
            "60",
        ],
        &["context is 64", "--max-seq"],
    );
    // Generation asked of an image model.
    let (_, vit) = converted("infergen-vit");
    let vin = golden("vit_a").join("inputs.safetensors");
    fails_with(
        &[
            "infer",
            vit.to_str().unwrap(),
            "--input",
            vin.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--generate",
            "3",
        ],
        &["not a causal language model"],
    );
}

/// A word-level tokenizer whose words are `t0`..`t{vocab-1}` (ids 0..vocab).
fn word_tokenizer(dir: &Path, vocab: usize) -> PathBuf {
    let words: serde_json::Map<String, serde_json::Value> =
        (0..vocab).map(|i| (format!("t{i}"), serde_json::json!(i))).collect();
    let tok = serde_json::json!({
        "version": "1.0",
        "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "t0"}
    });
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, tok.to_string()).unwrap();
    p
}

#[test]
fn generate_streams_the_greedy_continuation() {
    let d = scratch("generate");
    let g = transformer_golden("gpt2", "gpt2_b");
    let m = d.join("m.mote");
    assert!(xtask(&["convert", g.to_str().unwrap(), "-o", m.to_str().unwrap()]).0);
    let tok = word_tokenizer(&d, 120);
    let (_, prompt) = read_tensor(&g.join("inputs.safetensors"), "input_ids");
    let (_, want) = read_tensor(&g.join("expected.safetensors"), "greedy_tokens");
    let words = |ids: &[f64]| ids.iter().map(|&i| format!("t{i}")).collect::<Vec<_>>().join(" ");
    let (ok, stdout, err) = xtask(&[
        "generate",
        m.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--prompt",
        &words(&prompt),
        "--max-new-tokens",
        "16",
        "--temperature",
        "0",
    ]);
    assert!(ok, "{err}");
    assert!(stdout.trim_end().ends_with(&words(&want)), "{stdout}\nwant {}", words(&want));
    assert!(err.contains("16 generated") && err.contains("tokens/s"), "{err}");
    // Sampling is seeded: the same seed gives the same text.
    let sample = |seed: &str| {
        xtask(&[
            "generate",
            m.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "--prompt",
            "t1 t2 t3",
            "--max-new-tokens",
            "10",
            "--temperature",
            "1.5",
            "--seed",
            seed,
        ])
        .1
    };
    assert_eq!(sample("7"), sample("7"));
    // Errors: an encoder or an image model, a missing tokenizer, a prompt past the context.
    let (_, vit) = converted("generate-vit");
    fails_with(
        &["generate", vit.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap(), "--prompt", "t1"],
        &["not a causal language model"],
    );
    fails_with(
        &["generate", m.to_str().unwrap(), "--tokenizer", "/nonexistent/tokenizer.json", "--prompt", "t1"],
        &["tokenizer.json"],
    );
    let long = vec!["t5"; 49].join(" ");
    fails_with(
        &["generate", m.to_str().unwrap(), "--tokenizer", tok.to_str().unwrap(), "--prompt", &long],
        &["49 tokens", "context is 48"],
    );
}

#[test]
fn embed_minilm_sentences_like_sentence_transformers() {
    let d = scratch("embed");
    let dir = mote_tests::minilm_dir();
    let m = d.join("minilm.mote");
    let (ok, _, err) = xtask(&["convert", dir.to_str().unwrap(), "-o", m.to_str().unwrap(), "--max-seq", "128"]);
    assert!(ok, "{err}");
    let sentences: Vec<String> = std::fs::read_to_string(root().join("tests/data/minilm/sentences.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .map(String::from)
        .collect();
    let out = d.join("emb.safetensors");
    let mut args = vec!["embed", m.to_str().unwrap(), "--tokenizer"];
    let tok = dir.join("tokenizer.json");
    args.push(tok.to_str().unwrap());
    args.extend(sentences.iter().map(String::as_str));
    args.extend(["--output", out.to_str().unwrap()]);
    let (ok, stdout, err) = xtask(&args);
    assert!(ok, "{err}");
    assert!(stdout.contains("cosine similarity") && stdout.contains("384 dims"), "{stdout}");
    let (shape, got) = read_tensor(&out, "embeddings");
    assert_eq!(shape, vec![3, 384]);
    let (_, want) = read_tensor(&root().join("tests/data/minilm/expected.safetensors"), "embeddings");
    for i in 0..3 {
        let cos: f64 = (0..384).map(|j| got[i * 384 + j] * want[i * 384 + j]).sum();
        assert!(cos >= 0.999, "sentence {i}: cosine {cos}");
    }
    fails_with(&["embed", m.to_str().unwrap(), "--tokenizer", "/nonexistent.json", "x"], &["nonexistent.json"]);
}

#[test]
fn convert_int8_inspect_and_a_bad_block_named() {
    let d = scratch("int8");
    let m = d.join("q.mote");
    let (ok, stdout, err) =
        xtask(&["convert", golden("vit_a").to_str().unwrap(), "-o", m.to_str().unwrap(), "--dtype", "int8"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("quantized         9 tensors") && stdout.contains("the f16 file's 46,164 B"), "{stdout}");
    let (ok, stdout, _) = xtask(&["inspect", m.to_str().unwrap()]);
    assert!(ok && stdout.contains(".mote v2") && stdout.contains(" int8 "), "{stdout}");
    let inputs = golden("vit_a").join("inputs.safetensors");
    let expected = golden("vit_a").join("expected.safetensors");
    let (ok, stdout, err) = xtask(&[
        "validate",
        m.to_str().unwrap(),
        "--input",
        inputs.to_str().unwrap(),
        "--reference",
        expected.to_str().unwrap(),
        "--min-cosine",
        "0.999",
    ]);
    assert!(ok && stdout.contains("3/3"), "{stdout}{err}");
    // Block 2 of the first int8 tensor with a NaN scale: refused, naming the tensor and block.
    let mut b = std::fs::read(&m).unwrap();
    let (name, at) = {
        let buf = mote_models::host::AlignedBytes::new(&b);
        let model = mote_runtime::Model::parse(&buf).unwrap();
        let t = (0..model.tensor_count()).map(|i| model.tensor(i).unwrap()).find(|t| t.dtype.is_quantized()).unwrap();
        let weights = b.len() - model.weight_bytes();
        (t.name.to_string(), weights + t.offset + 2 * 34)
    };
    b[at..at + 2].copy_from_slice(&0x7E00u16.to_le_bytes());
    let crc = mote_runtime::crc32(&b[mote_runtime::format::CHECKSUM_START..]);
    b[20..24].copy_from_slice(&crc.to_le_bytes());
    let t = d.join("nan.mote");
    std::fs::write(&t, &b).unwrap();
    fails_with(&["inspect", t.to_str().unwrap()], &[&name, "block #2", "scale d is NaN or infinite"]);
    // An unknown --dtype is refused by name, listing the ones there are.
    let (ok, _, err) = xtask(&["convert", golden("vit_a").to_str().unwrap(), "-o", "/dev/null", "--dtype", "int3"]);
    assert!(!ok && err.contains("int3") && err.contains("int4"), "{err}");
}
