//! The report: the lines the firmware formats parse back to what they say.

use mote_board::report::{FILE, FILE_NUL, Line, ReportError, Timed, parse};

fn text(lines: &[Line<'_>]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn lines_have_the_firmware_text() {
    let cases: [(Line<'_>, &str); 14] = [
        (Line::Board("m4"), "board m4"),
        (Line::Calibrate { instructions: 2_000_000, ticks: 50_000 }, "calibrate 2000000 50000"),
        (
            Line::Model { architecture: "vit", bytes: 1000, arena: 64, persistent: 0, ops: 12 },
            "model vit bytes 1000 arena 64 persistent 0 ops 12",
        ),
        (Line::ArenaStatic(4096), "arena static 4096"),
        (Line::ArenaHeap { arena: 100, heap: 2000 }, "arena heap 100 of 2000"),
        (Line::Time { what: Timed::Invoke, ticks: 7, tokens: None }, "time invoke 7"),
        (Line::Time { what: Timed::Prefill, ticks: 400, tokens: Some(2) }, "time prefill 400 tokens 2"),
        (Line::Time { what: Timed::Step, ticks: 100, tokens: Some(1) }, "time step 100 tokens 1"),
        (Line::Out { name: "logits", count: 10, argmax: 3 }, "out logits 10 argmax 3"),
        (Line::Values(&[1.0, -0.0]), "3f800000 80000000 "),
        (Line::Tok(42), "tok 42"),
        (Line::Op { name: "MatMul", calls: 3, ticks: 250 }, "op MatMul 3 250"),
        (Line::Stack(4096), "stack 4096"),
        (Line::Error(&"op #3 (Wkv) is not compiled in"), "error op #3 (Wkv) is not compiled in"),
    ];
    for (line, want) in cases {
        assert_eq!(line.to_string(), want);
    }
    assert_eq!(Line::Done.to_string(), "done");
    assert_eq!(format!("{FILE}\0"), FILE_NUL);
}

#[test]
fn report_round_trips_values_tokens_and_times() {
    let values = [1.5f32, -0.0, 3.25e-7, f32::MAX, f32::MIN_POSITIVE, -1e30, 0.1, 7.0, f32::NEG_INFINITY];
    let mut lines = vec![
        Line::Board("m4"),
        Line::Calibrate { instructions: 2_000_000, ticks: 50_000 },
        Line::Model { architecture: "llama", bytes: 1000, arena: 64, persistent: 32, ops: 12 },
        Line::ArenaHeap { arena: 100, heap: 2000 },
        Line::Time { what: Timed::Prefill, ticks: 400, tokens: Some(2) },
        Line::Out { name: "logits", count: values.len(), argmax: 3 },
    ];
    lines.extend(values.chunks(mote_board::report::VALUES_PER_LINE).map(Line::Values));
    lines.extend([
        Line::Out { name: "hidden", count: 1, argmax: 0 },
        Line::Values(&[2.0]),
        Line::Time { what: Timed::Step, ticks: 100, tokens: Some(1) },
        Line::Time { what: Timed::Step, ticks: 300, tokens: Some(1) },
        Line::Tok(7),
        Line::Tok(9),
        Line::Time { what: Timed::Invoke, ticks: 1000, tokens: None },
        Line::Op { name: "MatMul", calls: 3, ticks: 250 },
        Line::Op { name: "Add", calls: 1, ticks: 5 },
        Line::Stack(4096),
        Line::Done,
    ]);
    let r = parse(&text(&lines)).unwrap();
    assert_eq!(r.outputs["logits"].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.map(f32::to_bits));
    assert_eq!(r.outputs["hidden"], [2.0]);
    assert_eq!(r.tokens, [7, 9]);
    assert_eq!(r.instr_per_tick, 40.0);
    assert_eq!(r.invokes, [1000]);
    assert_eq!(r.prefill, [(400, 2)]);
    assert_eq!(r.steps, [100, 300]);
    assert_eq!(r.per_token(), Some(40.0 * 200.0));
    assert_eq!(r.per_prefill_token(), Some(40.0 * 200.0));
    assert_eq!(r.per_inference(), Some(40.0 * 1000.0));
    assert_eq!(r.ops, [("MatMul".to_string(), 3, 250), ("Add".to_string(), 1, 5)]);
    assert_eq!(r.stack, 4096);
    assert_eq!(r.heap_arena, Some((100, 2000)));
}

#[test]
fn unfinished_or_failed_reports_are_errors() {
    let unfinished = text(&[Line::Board("m4"), Line::Calibrate { instructions: 2, ticks: 1 }]);
    assert_eq!(parse(&unfinished), Err(ReportError::Unfinished));
    assert!(ReportError::Unfinished.to_string().contains("before it finished"));
    let msg = "op #3 (Wkv) is not compiled in";
    let failed = text(&[Line::Board("m4"), Line::Error(&msg)]);
    let e = parse(&failed).unwrap_err();
    assert_eq!(e, ReportError::Board(msg.into()));
    assert_eq!(e.to_string(), format!("the board reports: {msg}"));
    assert_eq!(parse("error\ndone\n"), Err(ReportError::Board(String::new())));
}

#[test]
fn malformed_reports_are_errors_not_panics() {
    assert_eq!(parse("calibrate 5 0\ndone\n"), Err(ReportError::TimerStill));
    assert_eq!(parse("calibrate x 1\ndone\n"), Err(ReportError::BadLine("calibrate x 1".into())));
    assert_eq!(parse("time later 5\ndone\n"), Err(ReportError::BadLine("time later 5".into())));
    assert_eq!(parse("time prefill 5\ndone\n"), Err(ReportError::BadLine("time prefill 5".into())));
    assert_eq!(parse("out\ndone\n"), Err(ReportError::NoName("out")));
    assert_eq!(parse("op\ndone\n"), Err(ReportError::NoName("op")));
    assert_eq!(parse("3f800000\ndone\n"), Err(ReportError::ValuesBeforeOut));
    assert_eq!(parse("out y 2 argmax 0\n3f800000 zz\ndone\n"), Err(ReportError::BadValue("zz".into())));
    assert_eq!(parse("stack -1\ndone\n"), Err(ReportError::BadLine("stack -1".into())));
    // Lines the host does not use are skipped.
    assert!(parse("board m4\nmodel vit bytes 1\narena static 9\nsomething else\n\ndone\n").is_ok());
}
