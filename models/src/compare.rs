//! Comparing outputs with reference outputs: max abs error, cosine similarity, argmax.

/// How closely `got` matches `want`, per batch item and over everything.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub max_abs_error: f32,
    /// Cosine similarity of the whole flattened tensors.
    pub cosine: f64,
    /// The lowest cosine similarity of one batch item (first dimension).
    pub min_item_cosine: f64,
    /// Rows (of the last dimension) whose argmax agrees, out of `rows`.
    pub argmax_agree: usize,
    pub rows: usize,
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

fn argmax(v: &[f32]) -> Option<usize> {
    v.iter().enumerate().filter(|(_, x)| !x.is_nan()).max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i)
}

/// Compares two tensors of the same shape; `shape[0]` is the batch, the last dimension
/// the row for argmax. Returns None when the lengths differ.
pub fn compare(got: &[f32], want: &[f32], shape: &[usize]) -> Option<Comparison> {
    if got.len() != want.len() {
        return None;
    }
    let max_abs_error = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, |m, e| if e.is_nan() { f32::NAN } else { m.max(e) });
    let items = shape.first().copied().unwrap_or(1).max(1);
    let per_item = got.len() / items;
    let min_item_cosine = if per_item == 0 {
        1.0
    } else {
        got.chunks(per_item).zip(want.chunks(per_item)).map(|(a, b)| cosine(a, b)).fold(1.0, f64::min)
    };
    let row = shape.last().copied().unwrap_or(1).max(1);
    let (mut argmax_agree, mut rows) = (0, 0);
    for (a, b) in got.chunks(row).zip(want.chunks(row)) {
        rows += 1;
        if argmax(a) == argmax(b) {
            argmax_agree += 1;
        }
    }
    Some(Comparison { max_abs_error, cosine: cosine(got, want), min_item_cosine, argmax_agree, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_different() {
        let a = [1.0, 2.0, 3.0, -1.0];
        let c = compare(&a, &a, &[2, 2]).unwrap();
        assert_eq!(c.max_abs_error, 0.0);
        assert!((c.cosine - 1.0).abs() < 1e-12);
        assert_eq!((c.argmax_agree, c.rows), (2, 2));
        let b = [1.0, 2.0, -3.0, 1.0];
        let c = compare(&a, &b, &[2, 2]).unwrap();
        assert_eq!(c.max_abs_error, 6.0);
        assert!(c.min_item_cosine < -0.9);
        assert_eq!(c.argmax_agree, 1);
        assert!(compare(&a, &b[..3], &[3]).is_none());
    }
}
