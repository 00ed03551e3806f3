//! Model families as cargo features: which ops this build of the runtime executes.
//!
//! A firmware for one kind of model turns the others off (`default-features = false,
//! features = ["vit"]`); their kernels are then never referenced and not linked. A model
//! that needs a disabled op is refused by [`Model::parse`](crate::Model::parse) with
//! [`Error::OpDisabled`], never run.

use crate::error::Error;
use crate::format::OpCode;

/// The runtime feature that compiles `op` in, when this build does not have it.
pub(crate) fn missing_feature(op: OpCode) -> Option<&'static str> {
    let (enabled, feature) = match op {
        OpCode::PatchEmbed => (cfg!(feature = "vit"), "vit"),
        OpCode::Attention => (cfg!(any(feature = "vit", feature = "transformer")), "vit` or `transformer"),
        OpCode::PositionEmbedding | OpCode::Rope | OpCode::Glu => (cfg!(feature = "transformer"), "transformer"),
        OpCode::Embedding | OpCode::RmsNorm => {
            (cfg!(any(feature = "transformer", feature = "ssm")), "transformer` or `ssm")
        }
        OpCode::CausalConv1d | OpCode::SelectiveScan | OpCode::TokenShift | OpCode::Wkv => {
            (cfg!(feature = "ssm"), "ssm")
        }
        OpCode::ConcatRows
        | OpCode::Add
        | OpCode::LayerNorm
        | OpCode::MatMul
        | OpCode::SelectRows
        | OpCode::Activation
        | OpCode::Mul => (true, ""),
    };
    if enabled { None } else { Some(feature) }
}

/// `Err(OpDisabled)` when op `index` is not compiled into this runtime.
pub(crate) fn check(index: u32, op: OpCode) -> Result<(), Error> {
    match missing_feature(op) {
        None => Ok(()),
        Some(feature) => Err(Error::OpDisabled { index, op: op.name(), feature }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(feature = "vit", feature = "transformer", feature = "ssm"))]
    fn default_build_runs_every_op() {
        // The default features are every family: nothing may be missing.
        for code in 0..64 {
            if let Some(op) = OpCode::from_code(code) {
                assert_eq!(missing_feature(op), None, "{}", op.name());
            }
        }
    }
}
