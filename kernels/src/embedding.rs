//! Embedding lookups: rows of a table by token id or by position.

use crate::Src;

/// out[i, :] = table[rows[i], :] for each row index `rows` yields.
///
/// table: [vocab, dim] (f16 or f32); out: [n, dim]. A row index past the table gives a
/// zero row (the runtime rejects out-of-range token ids before any kernel runs).
pub fn ref_embedding(table: Src<'_>, dim: usize, rows: impl IntoIterator<Item = usize>, out: &mut [f32]) {
    if dim == 0 {
        return;
    }
    let vocab = table.len() / dim;
    for (out_row, r) in out.chunks_exact_mut(dim).zip(rows) {
        if r < vocab {
            table.slice(r * dim, dim).copy_to(out_row);
        } else {
            out_row.fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn gathers_rows_by_id_and_zeroes_out_of_range() {
        let table: Vec<f32> = (0..12).map(|x| x as f32).collect(); // [4, 3]
        let mut out = [9.0f32; 9];
        ref_embedding(Src::F32(&table), 3, [2usize, 0, 7], &mut out);
        assert_eq!(out, [6.0, 7.0, 8.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0]);
        let half: Vec<f16> = table.iter().map(|&x| f16::from_f32(x)).collect();
        let mut out16 = [0.0f32; 6];
        ref_embedding(Src::F16(&half), 3, 1..3, &mut out16);
        assert_eq!(out16, [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    }
}
