//! The report: one [`Line`] per line of text. Under QEMU the firmware writes them to the
//! host file [`FILE`] (semihosting, in QEMU's working directory), so the console stays
//! free for logs; on hardware they are defmt lines over RTT. The host reads them back
//! with [`parse`] (`std`).
//!
//! ```text
//! board NAME
//! calibrate INSTRUCTIONS TICKS              a loop of known length, timed
//! model ARCH bytes N arena N persistent N ops N
//! arena static BYTES | arena heap ARENA of HEAP
//! time invoke TICKS                         one invoke (image models)
//! time prefill|step TICKS tokens N          one step() (token models)
//! out NAME COUNT argmax I                   then COUNT f32 as 8 hex digits of their
//! 3f800000 bf800000 ...                       bits, each followed by a space, 8 a line
//! tok ID                                    a generated token
//! op KIND CALLS TICKS                       per op kind (profiled builds)
//! stack BYTES                               the stack's high-water mark
//! error MESSAGE                             the firmware stopped (the last line)
//! done                                      the report is complete (the last line)
//! ```

use core::fmt;

/// The report file under QEMU, in QEMU's working directory.
pub const FILE: &str = "mote-report.txt";
/// [`FILE`] nul-terminated, for semihosting's `SYS_OPEN`.
pub const FILE_NUL: &str = "mote-report.txt\0";
/// f32 values per line after an `out` line.
pub const VALUES_PER_LINE: usize = 8;

/// Every line's first word, as a literal (so the firmware's format strings hold it:
/// no extra argument per line). [`key`] has them as constants.
#[rustfmt::skip]
macro_rules! key {
    (BOARD) => { "board" };
    (CALIBRATE) => { "calibrate" };
    (MODEL) => { "model" };
    (ARENA) => { "arena" };
    (TIME) => { "time" };
    (OUT) => { "out" };
    (TOK) => { "tok" };
    (OP) => { "op" };
    (STACK) => { "stack" };
    (ERROR) => { "error" };
    (DONE) => { "done" };
}

/// Every line's first word.
pub mod key {
    pub const BOARD: &str = key!(BOARD);
    pub const CALIBRATE: &str = key!(CALIBRATE);
    pub const MODEL: &str = key!(MODEL);
    pub const ARENA: &str = key!(ARENA);
    pub const TIME: &str = key!(TIME);
    pub const OUT: &str = key!(OUT);
    pub const TOK: &str = key!(TOK);
    pub const OP: &str = key!(OP);
    pub const STACK: &str = key!(STACK);
    pub const ERROR: &str = key!(ERROR);
    pub const DONE: &str = key!(DONE);
}

/// What a `time` line timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timed {
    /// One `invoke` (image models).
    Invoke,
    /// One `step()` of a prompt chunk.
    Prefill,
    /// One `step()` of a generated token.
    Step,
}

impl Timed {
    pub const fn word(self) -> &'static str {
        match self {
            Timed::Invoke => "invoke",
            Timed::Prefill => "prefill",
            Timed::Step => "step",
        }
    }
}

/// One report line (its text is its `Display`, without the newline).
#[derive(Clone, Copy)]
pub enum Line<'a> {
    /// `board NAME`
    Board(&'a str),
    /// `calibrate INSTRUCTIONS TICKS`: a loop of `instructions` took `ticks`.
    Calibrate { instructions: u64, ticks: u64 },
    /// `model ARCH bytes N arena N persistent N ops N`
    Model { architecture: &'a str, bytes: usize, arena: usize, persistent: usize, ops: usize },
    /// `arena static BYTES`
    ArenaStatic(usize),
    /// `arena heap ARENA of HEAP`
    ArenaHeap { arena: usize, heap: usize },
    /// `time invoke TICKS`, `time prefill TICKS tokens N`, `time step TICKS tokens N`
    Time { what: Timed, ticks: u64, tokens: Option<usize> },
    /// `out NAME COUNT argmax I`; `Values` lines with its `COUNT` values follow.
    Out { name: &'a str, count: usize, argmax: usize },
    /// Up to [`VALUES_PER_LINE`] values of the last `out`: `{bits:08x} ` each.
    Values(&'a [f32]),
    /// `tok ID`
    Tok(usize),
    /// `op KIND CALLS TICKS`
    Op { name: &'a str, calls: u64, ticks: u64 },
    /// `stack BYTES`
    Stack(usize),
    /// `error MESSAGE`
    Error(&'a dyn fmt::Display),
    /// `done`
    Done,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Line::Board(name) => write!(f, concat!(key!(BOARD), " {}"), name),
            Line::Calibrate { instructions, ticks } => {
                write!(f, concat!(key!(CALIBRATE), " {} {}"), instructions, ticks)
            }
            Line::Model { architecture, bytes, arena, persistent, ops } => write!(
                f,
                concat!(key!(MODEL), " {} bytes {} arena {} persistent {} ops {}"),
                architecture, bytes, arena, persistent, ops
            ),
            Line::ArenaStatic(bytes) => write!(f, concat!(key!(ARENA), " static {}"), bytes),
            Line::ArenaHeap { arena, heap } => write!(f, concat!(key!(ARENA), " heap {} of {}"), arena, heap),
            Line::Time { what, ticks, tokens } => {
                write!(f, concat!(key!(TIME), " {} {}"), what.word(), ticks)?;
                match tokens {
                    Some(n) => write!(f, " tokens {n}"),
                    None => Ok(()),
                }
            }
            Line::Out { name, count, argmax } => write!(f, concat!(key!(OUT), " {} {} argmax {}"), name, count, argmax),
            Line::Values(values) => {
                for v in values {
                    write!(f, "{:08x} ", v.to_bits())?;
                }
                Ok(())
            }
            Line::Tok(id) => write!(f, concat!(key!(TOK), " {}"), id),
            Line::Op { name, calls, ticks } => write!(f, concat!(key!(OP), " {} {} {}"), name, calls, ticks),
            Line::Stack(bytes) => write!(f, concat!(key!(STACK), " {}"), bytes),
            Line::Error(e) => write!(f, concat!(key!(ERROR), " {}"), e),
            Line::Done => f.write_str(key::DONE),
        }
    }
}

impl fmt::Debug for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Line(\"{self}\")")
    }
}

#[cfg(feature = "std")]
pub use host::{BoardRun, ReportError, parse};

#[cfg(feature = "std")]
mod host {
    use std::collections::BTreeMap;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::{Timed, key};

    /// What the firmware reported.
    #[derive(Debug, Default, Clone, PartialEq)]
    pub struct BoardRun {
        pub outputs: BTreeMap<String, Vec<f32>>,
        pub tokens: Vec<i64>,
        /// Instructions per timer tick, from the calibration loop.
        pub instr_per_tick: f64,
        pub invokes: Vec<u64>,
        /// (ticks, tokens) per prefill chunk.
        pub prefill: Vec<(u64, u64)>,
        pub steps: Vec<u64>,
        /// (op kind, calls, ticks).
        pub ops: Vec<(String, u64, u64)>,
        pub stack: u64,
        /// (arena, heap) bytes when the arena came from a heap.
        pub heap_arena: Option<(u64, u64)>,
    }

    impl BoardRun {
        pub fn instructions(&self, ticks: u64) -> f64 {
            ticks as f64 * self.instr_per_tick
        }
        fn mean(&self, v: &[u64]) -> Option<f64> {
            (!v.is_empty()).then(|| self.instructions(v.iter().sum()) / v.len() as f64)
        }
        /// Mean instructions per `invoke` (image models).
        pub fn per_inference(&self) -> Option<f64> {
            self.mean(&self.invokes)
        }
        /// Mean instructions per generated token (single-token steps).
        pub fn per_token(&self) -> Option<f64> {
            self.mean(&self.steps)
        }
        /// Instructions per prompt token in prefill.
        pub fn per_prefill_token(&self) -> Option<f64> {
            let tokens: u64 = self.prefill.iter().map(|p| p.1).sum();
            (tokens > 0).then(|| self.instructions(self.prefill.iter().map(|p| p.0).sum()) / tokens as f64)
        }
    }

    /// Why a report was refused.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ReportError {
        /// A line whose numbers are missing or unreadable.
        BadLine(String),
        /// The calibration loop took no ticks.
        TimerStill,
        /// An `out` or `op` line without its name (the key).
        NoName(&'static str),
        /// Values before any `out` line.
        ValuesBeforeOut,
        /// A word of a values line that is not 8 hex digits.
        BadValue(String),
        /// The firmware's `error` line (its message).
        Board(String),
        /// No `done` line.
        Unfinished,
    }

    impl std::fmt::Display for ReportError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                ReportError::BadLine(line) => write!(f, "bad report line {line:?}"),
                ReportError::TimerStill => f.write_str("the board's timer did not advance"),
                ReportError::NoName(k) => write!(f, "{k} line without a name"),
                ReportError::ValuesBeforeOut => f.write_str("values before any out line"),
                ReportError::BadValue(v) => write!(f, "bad value {v:?}"),
                ReportError::Board(msg) => write!(f, "the board reports: {msg}"),
                ReportError::Unfinished => f.write_str("the firmware stopped before it finished its report"),
            }
        }
    }

    impl std::error::Error for ReportError {}

    fn num<T: std::str::FromStr>(s: Option<&str>, line: &str) -> Result<T, ReportError> {
        s.and_then(|s| s.parse().ok()).ok_or_else(|| ReportError::BadLine(line.to_string()))
    }

    /// Parses a report (the text of [`super::FILE`]). Lines it does not use (`board`,
    /// `model`, `arena static`, unknown keys) are skipped; an `error` line or a missing
    /// `done` is an error.
    pub fn parse(text: &str) -> Result<BoardRun, ReportError> {
        let mut r = BoardRun::default();
        let mut current: Option<String> = None;
        let mut done = false;
        for line in text.lines() {
            let mut w = line.split_whitespace();
            match w.next() {
                Some(key::CALIBRATE) => {
                    let (instr, ticks): (f64, f64) = (num(w.next(), line)?, num(w.next(), line)?);
                    if ticks <= 0.0 {
                        return Err(ReportError::TimerStill);
                    }
                    r.instr_per_tick = instr / ticks;
                }
                Some(key::OUT) => {
                    let name = w.next().ok_or(ReportError::NoName(key::OUT))?.to_string();
                    r.outputs.entry(name.clone()).or_default();
                    current = Some(name);
                }
                Some(key::TOK) => r.tokens.push(num(w.next(), line)?),
                Some(key::TIME) => {
                    let (what, ticks) = (w.next(), num::<u64>(w.next(), line)?);
                    match what {
                        Some(w0) if w0 == Timed::Invoke.word() => r.invokes.push(ticks),
                        Some(w0) if w0 == Timed::Prefill.word() => r.prefill.push((ticks, num(w.nth(1), line)?)),
                        Some(w0) if w0 == Timed::Step.word() => r.steps.push(ticks),
                        _ => return Err(ReportError::BadLine(line.to_string())),
                    }
                }
                Some(key::OP) => {
                    let name = w.next().ok_or(ReportError::NoName(key::OP))?.to_string();
                    r.ops.push((name, num(w.next(), line)?, num(w.next(), line)?));
                }
                Some(key::STACK) => r.stack = num(w.next(), line)?,
                Some(key::ARENA) if w.clone().next() == Some("heap") => {
                    r.heap_arena = Some((num(w.nth(1), line)?, num(w.nth(1), line)?));
                }
                Some(key::ERROR) => {
                    let msg = line.trim_start().get(key::ERROR.len() + 1..).unwrap_or("");
                    return Err(ReportError::Board(msg.to_string()));
                }
                Some(key::DONE) => done = true,
                Some(word) if word.len() == 8 && word.bytes().all(|c| c.is_ascii_hexdigit()) => {
                    let name = current.as_ref().ok_or(ReportError::ValuesBeforeOut)?;
                    let values = r.outputs.entry(name.clone()).or_default();
                    for h in line.split_whitespace() {
                        let bits = u32::from_str_radix(h, 16).map_err(|_| ReportError::BadValue(h.to_string()))?;
                        values.push(f32::from_bits(bits));
                    }
                }
                _ => {}
            }
        }
        if !done {
            return Err(ReportError::Unfinished);
        }
        Ok(r)
    }
}
