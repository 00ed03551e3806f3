//! The bundled demo: a ViT trained on scikit-learn's digits (scripts/train_digits_vit.py).
//! Mote must reach the accuracy PyTorch measured and agree with PyTorch's predictions.

use std::collections::BTreeMap;

use mote_models::WeightDType;
use mote_runtime::sampler::argmax;
use mote_tests::{convert, root, run, tensors};

#[test]
fn digits_vit_accuracy_and_agreement_with_pytorch() {
    let dir = root().join("demo/digits-vit");
    let c = convert(&dir, WeightDType::F16);
    let test = tensors(&dir.join("test.safetensors"));
    let labels = test["labels"].as_i64().unwrap().to_vec();
    let inputs = BTreeMap::from([("pixel_values".to_string(), test["pixel_values"].clone())]);
    let got = run(&c.bytes, &inputs);
    let mote = got["logits"].to_f32();
    let torch = test["torch_logits"].to_f32();
    let n = labels.len();
    let mote_pred: Vec<usize> = mote.chunks(10).map(argmax).collect();
    let torch_pred: Vec<usize> = torch.chunks(10).map(argmax).collect();
    assert_eq!(mote_pred.len(), n);
    let correct = mote_pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count();
    let torch_correct = torch_pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count();
    let agree = mote_pred.iter().zip(&torch_pred).filter(|(a, b)| a == b).count();
    println!("accuracy Mote {correct}/{n}, PyTorch {torch_correct}/{n}; agreement {agree}/{n}");
    assert!(torch_correct as f64 >= 0.95 * n as f64, "PyTorch accuracy below 95%");
    assert!(correct as f64 >= 0.95 * n as f64, "Mote accuracy below 95%");
    assert!(agree as f64 >= 0.995 * n as f64, "agreement with PyTorch below 99.5%");
}

/// The demo ViT with int8 and int4 weights: smaller files, the accuracy kept (int8) or
/// nearly kept (int4), and agreement with PyTorch's predictions.
#[test]
fn digits_vit_quantized() {
    let dir = root().join("demo/digits-vit");
    let test = tensors(&dir.join("test.safetensors"));
    let labels = test["labels"].as_i64().unwrap().to_vec();
    let torch_pred: Vec<usize> = test["torch_logits"].to_f32().chunks(10).map(argmax).collect();
    let inputs = BTreeMap::from([("pixel_values".to_string(), test["pixel_values"].clone())]);
    let n = labels.len();
    let f16 = convert(&dir, WeightDType::F16);
    for (dtype, min_accuracy, min_agree) in [(WeightDType::Int8, 0.975, 0.995), (WeightDType::Int4, 0.965, 0.985)] {
        let c = convert(&dir, dtype);
        let pred: Vec<usize> = run(&c.bytes, &inputs)["logits"].to_f32().chunks(10).map(argmax).collect();
        let correct = pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count();
        let agree = pred.iter().zip(&torch_pred).filter(|(a, b)| a == b).count();
        println!(
            "{dtype:?}: {} weights quantized, {} B ({:.2}x the f16 file's {} B); accuracy {correct}/{n}, \
             agreement with PyTorch {agree}/{n}",
            c.quantized_tensors,
            c.flash_bytes,
            c.flash_bytes as f64 / f16.flash_bytes as f64,
            f16.flash_bytes
        );
        assert_eq!(c.f16_flash_bytes, f16.flash_bytes);
        assert!(c.quantized_tensors > 0 && c.flash_bytes < f16.flash_bytes);
        assert!(correct as f64 >= min_accuracy * n as f64, "{dtype:?} accuracy {correct}/{n}");
        assert!(agree as f64 >= min_agree * n as f64, "{dtype:?} agreement {agree}/{n}");
    }
}
