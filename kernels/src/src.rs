//! [`Src`]: a read-only operand that is either f32 or f16 (weights from flash).

use half::f16;

/// A read-only tensor operand: f32 activations, or weights stored as f32 or IEEE f16.
#[derive(Clone, Copy, Debug)]
pub enum Src<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

impl<'a> Src<'a> {
    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Src::F32(s) => s.len(),
            Src::F16(s) => s.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as f32, or 0.0 past the end (kernels are called with validated lengths).
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        match self {
            Src::F32(s) => s.get(i).copied().unwrap_or(0.0),
            Src::F16(s) => s.get(i).map_or(0.0, |&v| widen(v)),
        }
    }

    /// Elements `start..start + len` (clamped to the slice).
    #[inline]
    pub fn slice(&self, start: usize, len: usize) -> Src<'a> {
        fn clamp<T>(s: &[T], start: usize, len: usize) -> &[T] {
            let a = start.min(s.len());
            let b = start.saturating_add(len).min(s.len());
            &s[a..b]
        }
        match *self {
            Src::F32(s) => Src::F32(clamp(s, start, len)),
            Src::F16(s) => Src::F16(clamp(s, start, len)),
        }
    }

    /// Copies (and widens) the elements into `dst`, up to the shorter of the two.
    #[inline]
    pub fn copy_to(&self, dst: &mut [f32]) {
        match self {
            Src::F32(s) => dst.iter_mut().zip(s.iter()).for_each(|(d, v)| *d = *v),
            Src::F16(s) => dst.iter_mut().zip(s.iter()).for_each(|(d, &v)| *d = widen(v)),
        }
    }
}

/// An element type a kernel reads from a [`Src`], widened to f32.
///
/// Kernels match on [`Src`] once and run a loop generic over this trait, so the inner
/// loop is monomorphised for f32 and f16 instead of matching per element.
pub(crate) trait Element: Copy {
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    #[inline]
    fn to_f32(self) -> f32 {
        widen(self)
    }
}

/// f16 -> f32, exactly. On Arm (with the `simd` feature's nightly `f16` primitive) one
/// `VCVTB.F32.F16`; the `half` crate's conversion is a dozen integer instructions there.
#[inline(always)]
pub(crate) fn widen(v: f16) -> f32 {
    #[cfg(all(feature = "simd", target_arch = "arm"))]
    {
        prim::widen(v.to_bits())
    }
    #[cfg(not(all(feature = "simd", target_arch = "arm")))]
    {
        v.to_f32()
    }
}

/// The nightly `f16` primitive (this module does not see `half::f16`).
#[cfg(all(feature = "simd", target_arch = "arm"))]
mod prim {
    #[inline(always)]
    pub(super) fn widen(bits: u16) -> f32 {
        f16::from_bits(bits) as f32
    }
}

impl Src<'_> {
    /// `dst[i] = f(dst[i], self[i])` for `i` up to the shorter of the two; one match per
    /// call, not per element.
    #[inline]
    pub(crate) fn zip_with(&self, dst: &mut [f32], f: impl Fn(f32, f32) -> f32) {
        match self {
            Src::F32(s) => dst.iter_mut().zip(s.iter()).for_each(|(d, v)| *d = f(*d, *v)),
            Src::F16(s) => dst.iter_mut().zip(s.iter()).for_each(|(d, &v)| *d = f(*d, widen(v))),
        }
    }
}

/// `debug_assert!` of a kernel's shape contract (lengths, strides). The runtime
/// validated every shape when it parsed the model, so release builds check nothing.
/// The wrong-length tests switch these off on their own thread, to run exactly the code
/// a release build runs and check that it cannot panic.
macro_rules! debug_assert_shape {
    ($($arg:tt)+) => {
        if !$crate::src::shape_checks_off() {
            debug_assert!($($arg)+);
        }
    };
}

/// [`debug_assert_shape!`] with `debug_assert_eq!`.
macro_rules! debug_assert_shape_eq {
    ($($arg:tt)+) => {
        if !$crate::src::shape_checks_off() {
            debug_assert_eq!($($arg)+);
        }
    };
}

/// What a front function (`matmul::matmul`, `norm::layer_norm`, ...) does when the
/// lengths it was given break its contract, so that no table entry can take them (a
/// caller's bug: the runtime validates every shape before it calls). On the host the
/// scalar reference runs, which stays in bounds and gives what it gives. A
/// microcontroller build (`cfg(mote_board)`) fills `$out` with NaN instead, so its flash
/// holds no reference kernel that no model calls.
macro_rules! mismatch {
    ($out:expr, $reference:expr) => {{
        #[cfg(mote_board)]
        {
            $out.fill(f32::NAN)
        }
        #[cfg(not(mote_board))]
        {
            $reference
        }
    }};
}

pub(crate) use {debug_assert_shape, debug_assert_shape_eq, mismatch};

/// Shape checks are always on outside tests.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn shape_checks_off() -> bool {
    false
}

#[cfg(test)]
pub(crate) use crate::testutil::shape_checks_off;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_slice_copy() {
        let h = [f16::from_f32(1.5), f16::from_f32(-2.0), f16::from_f32(0.25)];
        let s = Src::F16(&h);
        assert_eq!(s.len(), 3);
        assert_eq!(s.get(1), -2.0);
        assert_eq!(s.get(7), 0.0);
        let t = s.slice(1, 5);
        assert_eq!(t.len(), 2);
        let mut out = [0.0f32; 2];
        t.copy_to(&mut out);
        assert_eq!(out, [-2.0, 0.25]);
    }
}
