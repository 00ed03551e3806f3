//! Alignment wrapper for embedding a `.mote` in flash.

/// Wraps bytes (or anything) with the 64-byte alignment the `.mote` format asks of the
/// buffer that holds a model, so weights can be read in place from flash.
///
/// ```ignore
/// static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!("model.mote"));
/// let model = Model::parse(&MODEL.0)?;
/// ```
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Aligned<T: ?Sized>(pub T);
