//! Host tensors (f32 or i64) and safetensors reading/writing shared by the converter,
//! the CLI and the tests.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A dense host tensor, widened to f32 (or kept as i64 for integer inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl HostTensor {
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        HostTensor { shape, data: TensorData::F32(data) }
    }
    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Self {
        HostTensor { shape, data: TensorData::I64(data) }
    }
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            TensorData::I64(_) => None,
        }
    }
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            TensorData::F32(_) => None,
        }
    }
    pub fn dtype_name(&self) -> &'static str {
        match self.data {
            TensorData::F32(_) => "f32",
            TensorData::I64(_) => "i64",
        }
    }
}

/// Decodes one safetensors tensor: floats widen to f32, integers to i64.
pub fn decode(name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> Result<HostTensor> {
    fn words<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        b.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    let shape = shape.to_vec();
    let t = match dtype {
        Dtype::F32 => HostTensor::f32(shape, words::<4>(bytes).map(f32::from_le_bytes).collect()),
        Dtype::F16 => HostTensor::f32(shape, words::<2>(bytes).map(|w| half::f16::from_le_bytes(w).to_f32()).collect()),
        Dtype::BF16 => {
            HostTensor::f32(shape, words::<2>(bytes).map(|w| half::bf16::from_le_bytes(w).to_f32()).collect())
        }
        Dtype::F64 => HostTensor::f32(shape, words::<8>(bytes).map(|w| f64::from_le_bytes(w) as f32).collect()),
        Dtype::I64 => HostTensor::i64(shape, words::<8>(bytes).map(i64::from_le_bytes).collect()),
        Dtype::I32 => HostTensor::i64(shape, words::<4>(bytes).map(|w| i32::from_le_bytes(w) as i64).collect()),
        other => {
            return Err(Error::TensorDType { name: name.to_string(), dtype: format!("{other:?}") });
        }
    };
    Ok(t)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| Error::Io { path: path.to_path_buf(), err })
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = read_file(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Safetensors { path: path.to_path_buf(), msg: e.to_string() })?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let t = decode(&name, view.dtype(), view.shape(), view.data())?;
            Ok((name, t))
        })
        .collect()
}

/// Writes tensors (f32 as F32, i64 as I64) to a safetensors file.
pub fn write_safetensors(path: &Path, tensors: &BTreeMap<String, HostTensor>) -> Result<()> {
    // (name, (dtype, shape, little-endian bytes))
    type Raw = (String, (Dtype, Vec<usize>, Vec<u8>));
    let bytes: Vec<Raw> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, raw) = match &t.data {
                TensorData::F32(v) => (Dtype::F32, bytemuck::cast_slice::<f32, u8>(v).to_vec()),
                TensorData::I64(v) => (Dtype::I64, bytemuck::cast_slice::<i64, u8>(v).to_vec()),
            };
            (name.clone(), (dtype, t.shape.clone(), raw))
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, (dtype, shape, raw))| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), raw).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Safetensors { path: path.to_path_buf(), msg: e.to_string() })?;
    let out = safetensors::serialize(views, None)
        .map_err(|e| Error::Safetensors { path: path.to_path_buf(), msg: e.to_string() })?;
    std::fs::write(path, out).map_err(|err| Error::Io { path: path.to_path_buf(), err })
}
