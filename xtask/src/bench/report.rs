//! The report: the tables printed to the terminal and the JSON written to `--json`.

use serde_json::{Value, json};

use super::Args;
use super::kernels::KernelRow;
use super::machine::Machine;
use super::models::E2eRow;

pub(super) fn print_machine(m: &Machine) {
    println!("machine           {}", m.cpu);
    println!("  f32 FMA peak    {:>7.1} GFLOP/s  (one core, best of repeats; {})", m.fma_gflops, m.fma_how);
    let mib = m.dram_bytes >> 20;
    println!("  DRAM read       {:>7.1} GB/s     (one stream over {mib} MiB, best of repeats)", m.dram_1_gbs);
    println!(
        "                  {:>7.1} GB/s     (8 interleaved streams; matvec % below are of the better of the two)",
        m.dram_8_gbs
    );
}

pub(super) fn print_kernels(rows: &[KernelRow], m: &Machine) {
    println!(
        "\n{:<28} {:<26} {:>17} {:>17} {:>8}   fast vs machine",
        "kernel (ref vs fast)", "shape", "ref", "fast", "speedup"
    );
    for r in rows {
        let rate = |s| format!("{:.2} {}", r.rate(s), r.unit());
        let of = r.of_machine(m).map(|(f, what)| format!("{:5.1}% {what}", 100.0 * f)).unwrap_or_default();
        println!(
            "{:<28} {:<26} {:>17} {:>17} {:>7.1}x   {of}",
            r.name,
            r.shape,
            rate(r.ref_s),
            rate(r.fast_s),
            r.ref_s / r.fast_s
        );
    }
}

pub(super) fn print_e2e(rows: &[E2eRow], notes: &[String]) {
    println!("\n{:<22} {:>12} {:<12} {:>11}  what", "end to end", "", "", "ms each");
    for r in rows {
        println!("{:<22} {:>12.1} {:<12} {:>11.3}  {}", r.name, r.per_s, r.unit, r.ms(), r.detail);
    }
    for n in notes {
        println!("  note: {n}");
    }
}

pub(super) fn print_peer(rows: &[E2eRow]) {
    let pairs: Vec<&E2eRow> = rows.iter().filter(|r| r.peer_ms.is_some()).collect();
    if pairs.is_empty() {
        return;
    }
    println!(
        "\n{:<22} {:>11} {:>11} {:>10}   {:>11} {:>11} {:>10}",
        "vs onnxruntime", "Mote ms", "ORT ms", "Mote/ORT", "best Mote", "best ORT", "Mote/ORT"
    );
    for r in pairs {
        let ort = r.peer_ms.unwrap_or(f64::NAN);
        let (bm, bo) = (r.best_ms.unwrap_or(f64::NAN), r.peer_best_ms.unwrap_or(f64::NAN));
        println!(
            "{:<22} {:>11.3} {:>11.3} {:>10.2}   {:>11.3} {:>11.3} {:>10.2}",
            r.name,
            r.ms(),
            ort,
            r.ms() / ort,
            bm,
            bo,
            bm / bo
        );
    }
    println!(
        "  (one thread each; Mote/ORT < 1 means Mote is faster; medians, then the shortest times, which\n   \
         another process on the machine disturbs least)"
    );
}

pub(super) fn to_json(
    a: &Args,
    load: Option<&str>,
    m: &Machine,
    kernels: &[KernelRow],
    e2e: &[E2eRow],
    notes: &[String],
) -> Value {
    json!({
        "kernel_path": mote_kernels::kernel_path(),
        "load_average_at_start": load,
        "simd_active": mote_kernels::simd_active(),
        "quick": a.quick,
        "threads": 1,
        "machine": {
            "cpu": m.cpu,
            "fma_peak_gflops": m.fma_gflops,
            "fma_loop": m.fma_how,
            "dram_read_gbs_1_stream": m.dram_1_gbs,
            "dram_read_gbs_8_streams": m.dram_8_gbs,
            "dram_read_gbs_for_matvec": m.dram_gbs(),
            "dram_buffer_bytes": m.dram_bytes,
        },
        "kernels": kernels.iter().map(|r| json!({
            "name": r.name,
            "shape": r.shape,
            "unit": r.unit(),
            "ref_s": r.ref_s,
            "fast_s": r.fast_s,
            "ref_rate": r.rate(r.ref_s),
            "fast_rate": r.rate(r.fast_s),
            "speedup": r.ref_s / r.fast_s,
            "fast_fraction_of_machine": r.of_machine(m).map(|(f, _)| f),
            "machine_figure": r.of_machine(m).map(|(_, w)| w),
        })).collect::<Vec<_>>(),
        "end_to_end": e2e.iter().map(|r| json!({
            "name": r.name,
            "detail": r.detail,
            "per_s": r.per_s,
            "unit": r.unit,
            "ms": r.ms(),
            "best_ms": r.best_ms,
            "onnxruntime_ms": r.peer_ms,
            "onnxruntime_best_ms": r.peer_best_ms,
            "mote_over_onnxruntime": r.peer_ms.map(|p| r.ms() / p),
            "mote_over_onnxruntime_best": r.best_ms.zip(r.peer_best_ms).map(|(m, p)| m / p),
        })).collect::<Vec<_>>(),
        "notes": notes,
    })
}
