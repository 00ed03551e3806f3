//! The op graph a recipe builds: tensors (weights with their bytes, activations) and
//! ops in execution order. The planner assigns arena offsets; the writer serialises it.

use std::collections::HashMap;

use half::f16;
use mote_kernels::quant::{BlockQ4, BlockQ8, QK};
use mote_runtime::format::{MAX_OP_INPUTS, MAX_OP_PARAMS};
use mote_runtime::ops::{self as op, OpParams};
use mote_runtime::{Activation, DType, OpCode};

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::tensor::HostTensor;

pub type TensorId = u32;

/// How matrices are stored in the `.mote` (vectors such as biases and norm weights are
/// always f32: they are tiny and keep accuracy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightDType {
    #[default]
    F16,
    F32,
    /// MatMul weights and Embedding tables whose rows are a multiple of 32 wide in int8
    /// blocks (llama.cpp's Q8_0), every other matrix in f16.
    Int8,
    /// As [`Int8`](Self::Int8), in int4 blocks (llama.cpp's Q4_1).
    Int4,
    /// A test reference: [`Int8`](Self::Int8)'s file with every quantized weight stored
    /// instead as f32 values, its blocks dequantized (the same numbers through the f32
    /// kernels). Not offered by the CLI.
    Int8Simulated,
    /// [`Int8Simulated`](Self::Int8Simulated) for [`Int4`](Self::Int4).
    Int4Simulated,
}

impl WeightDType {
    /// The storage of a matrix that is not quantized.
    pub fn dtype(self) -> DType {
        match self {
            WeightDType::F32 => DType::F32,
            _ => DType::F16,
        }
    }
    /// The dtype quantizable matrices take (None: no quantization), and whether the
    /// quantization is only simulated (dequantized values stored as f32).
    pub fn quantized(self) -> Option<(DType, bool)> {
        match self {
            WeightDType::F16 | WeightDType::F32 => None,
            WeightDType::Int8 => Some((DType::Int8, false)),
            WeightDType::Int4 => Some((DType::Int4, false)),
            WeightDType::Int8Simulated => Some((DType::Int8, true)),
            WeightDType::Int4Simulated => Some((DType::Int4, true)),
        }
    }
    /// The name `--dtype` takes.
    pub fn name(self) -> &'static str {
        match self {
            WeightDType::F16 => "f16",
            WeightDType::F32 => "f32",
            WeightDType::Int8 => "int8",
            WeightDType::Int4 => "int4",
            WeightDType::Int8Simulated => "int8-simulated",
            WeightDType::Int4Simulated => "int4-simulated",
        }
    }
    /// The weight dtype `--dtype` names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::F16, Self::F32, Self::Int8, Self::Int4, Self::Int8Simulated, Self::Int4Simulated]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// `values` as the bytes of a plain `dtype` (f16 or f32) weight.
fn encode(name: &str, values: &[f32], dtype: DType) -> Result<Vec<u8>> {
    Ok(match dtype {
        DType::F16 => {
            if let Some(&big) = values.iter().find(|v| v.abs() > f16::MAX.to_f32()) {
                return Err(Error::F16Range { name: name.into(), value: big });
            }
            values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect()
        }
        DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::I32 | DType::Int8 | DType::Int4 => {
            return Err(Error::TensorDType { name: name.into(), dtype: format!("{} weight", dtype.name()) });
        }
    })
}

/// Quantizes a row-major `[rows, cols]` matrix (cols a multiple of 32) into blocks of
/// `dtype` (int8 or int4), 32 values of a row per block: the file's bytes.
pub fn quantize_rows(values: &[f32], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::Int4 => values.chunks(QK).flat_map(|c| bytemuck::bytes_of(&BlockQ4::quantize(c)).to_vec()).collect(),
        _ => values.chunks(QK).flat_map(|c| bytemuck::bytes_of(&BlockQ8::quantize(c)).to_vec()).collect(),
    }
}

/// The values the blocks of [`quantize_rows`] stand for (quantize, then dequantize).
pub fn quantize_dequantize(values: &[f32], dtype: DType) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for (c, o) in values.chunks(QK).zip(out.chunks_mut(QK)) {
        match dtype {
            DType::Int4 => BlockQ4::quantize(c).dequantize_to(o),
            _ => BlockQ8::quantize(c).dequantize_to(o),
        }
    }
    out
}

#[derive(Clone, Debug)]
pub enum TensorKind {
    /// Read-only bytes stored in the file (already in the tensor's dtype).
    Weight(Vec<u8>),
    /// Scratch: lives from the op that writes it to the last op that reads it.
    Activation,
    /// Lives for the whole life of the interpreter (KV cache, recurrent state).
    Persistent,
}

#[derive(Clone, Debug)]
pub struct TensorDef {
    pub name: String,
    /// The rows are tokens (`rows == Graph::max_tokens`); see `mote_runtime::format::TENSOR_SEQ`.
    pub seq: bool,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub kind: TensorKind,
}

impl TensorDef {
    pub fn elems(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.dtype.bytes_for(self.elems()).unwrap_or(usize::MAX)
    }
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    pub fn rows(&self) -> usize {
        self.elems() / self.cols().max(1)
    }
    pub fn is_weight(&self) -> bool {
        matches!(self.kind, TensorKind::Weight(_))
    }
}

#[derive(Clone, Debug)]
pub struct OpDef {
    pub opcode: OpCode,
    pub inputs: [Option<TensorId>; MAX_OP_INPUTS],
    pub output: TensorId,
    pub params: [u32; MAX_OP_PARAMS],
}

/// A model as ops over tensors, ready to plan and write.
#[derive(Clone, Debug)]
pub struct Graph {
    pub architecture: String,
    pub config_json: String,
    pub weight_dtype: WeightDType,
    pub tensors: Vec<TensorDef>,
    pub ops: Vec<OpDef>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// Most tokens per call (rows of token-row tensors); 0 without token inputs.
    pub max_tokens: usize,
    /// Tokens the KV cache holds; 0 without one.
    pub max_context: usize,
    /// Weights already added, by checkpoint name (tied weights are stored once).
    weight_ids: HashMap<String, TensorId>,
    /// Quantizing conversions: the matrices added so far (stored in `dtype()` by
    /// [`finish_weights`](Self::finish_weights)), with their f32 values.
    matrices: Vec<(TensorId, Vec<f32>)>,
    /// Matrices [`finish_weights`](Self::finish_weights) quantized.
    pub quantized: usize,
}

impl Graph {
    pub fn new(architecture: &str, config_json: String, weight_dtype: WeightDType) -> Self {
        Graph {
            architecture: architecture.to_string(),
            config_json,
            weight_dtype,
            tensors: Vec::new(),
            ops: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            max_tokens: 0,
            max_context: 0,
            weight_ids: HashMap::new(),
            matrices: Vec::new(),
            quantized: 0,
        }
    }

    pub fn tensor(&self, id: TensorId) -> &TensorDef {
        &self.tensors[id as usize]
    }

    fn push(&mut self, name: String, dtype: DType, shape: Vec<usize>, kind: TensorKind) -> TensorId {
        self.tensors.push(TensorDef { name, seq: false, dtype, shape, kind });
        (self.tensors.len() - 1) as TensorId
    }

    /// A model input (f32 activation).
    pub fn input(&mut self, name: &str, shape: Vec<usize>) -> TensorId {
        let id = self.push(name.to_string(), DType::F32, shape, TensorKind::Activation);
        self.inputs.push(id);
        id
    }

    /// Names `id` as a model output.
    pub fn output(&mut self, id: TensorId, name: &str) {
        self.tensors[id as usize].name = name.to_string();
        self.outputs.push(id);
    }

    /// An activation produced by the next op.
    pub fn activation(&mut self, name: &str, shape: Vec<usize>) -> TensorId {
        self.push(name.to_string(), DType::F32, shape, TensorKind::Activation)
    }

    /// An activation whose rows are tokens exactly when `like`'s are.
    fn activation_like(&mut self, name: &str, shape: Vec<usize>, like: TensorId) -> TensorId {
        let seq = self.tensor(like).seq;
        let id = self.activation(name, shape);
        self.tensors[id as usize].seq = seq;
        id
    }

    /// A token-id input: i32, one row per token, `max_tokens` rows.
    pub fn token_input(&mut self, name: &str) -> TensorId {
        let id = self.push(name.to_string(), DType::I32, vec![self.max_tokens, 1], TensorKind::Activation);
        self.tensors[id as usize].seq = true;
        self.inputs.push(id);
        id
    }

    /// A per-token f32 input (e.g. `attention_mask`): `max_tokens` values.
    pub fn token_f32_input(&mut self, name: &str) -> TensorId {
        let id = self.input(name, vec![self.max_tokens, 1]);
        self.tensors[id as usize].seq = true;
        id
    }

    /// A persistent f32 tensor (KV cache, recurrent state), zeroed by `reset`.
    pub fn persistent(&mut self, name: &str, shape: Vec<usize>) -> TensorId {
        self.push(name.to_string(), DType::F32, shape, TensorKind::Persistent)
    }

    /// Adds `t` as a weight called `name`, stored as `dtype`.
    pub fn weight_from(&mut self, name: &str, t: &HostTensor, dtype: DType) -> Result<TensorId> {
        let values = t.as_f32().ok_or_else(|| Error::TensorDType { name: name.into(), dtype: "integer".into() })?;
        if let Some(&bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::NonFinite { name: name.into(), value: bad });
        }
        if dtype == self.weight_dtype.dtype() && self.weight_dtype.quantized().is_some() {
            // A matrix of a quantizing conversion: stored by `finish_weights`, once its uses are known.
            let id = self.push(name.to_string(), dtype, t.shape.clone(), TensorKind::Weight(Vec::new()));
            self.matrices.push((id, values.to_vec()));
            return Ok(id);
        }
        let bytes = encode(name, values, dtype)?;
        Ok(self.push(name.to_string(), dtype, t.shape.clone(), TensorKind::Weight(bytes)))
    }

    fn checkpoint_weight(&mut self, ckpt: &Checkpoint, name: &str, shape: &[usize], dtype: DType) -> Result<TensorId> {
        if let Some(&id) = self.weight_ids.get(name) {
            return Ok(id);
        }
        let t = ckpt.tensor(name, shape)?;
        let id = self.weight_from(name, &t, dtype)?;
        self.weight_ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// A matrix from the checkpoint, stored in the graph's weight dtype.
    pub fn matrix(&mut self, ckpt: &Checkpoint, name: &str, shape: &[usize]) -> Result<TensorId> {
        let dtype = self.weight_dtype.dtype();
        self.checkpoint_weight(ckpt, name, shape, dtype)
    }

    /// A matrix stored in the checkpoint transposed (`[in, out]`, GPT-2's `Conv1D`),
    /// stored as `[out, in]` in the graph's weight dtype.
    pub fn matrix_transposed(&mut self, ckpt: &Checkpoint, name: &str, in_out: [usize; 2]) -> Result<TensorId> {
        if let Some(&id) = self.weight_ids.get(name) {
            return Ok(id);
        }
        let t = ckpt.tensor(name, &in_out)?;
        let v = t.to_f32();
        let [rows_in, cols_out] = in_out;
        let mut tr = vec![0f32; v.len()];
        for i in 0..rows_in {
            for o in 0..cols_out {
                tr[o * rows_in + i] = v[i * cols_out + o];
            }
        }
        let dtype = self.weight_dtype.dtype();
        let id = self.weight_from(name, &HostTensor::f32(vec![cols_out, rows_in], tr), dtype)?;
        self.weight_ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Rows `start..start + count` of a checkpoint matrix of shape `shape` (e.g. one half
    /// of a fused projection), stored as `dtype` under `"{name}[start:end]"`.
    pub fn rows_of(
        &mut self,
        ckpt: &Checkpoint,
        name: &str,
        shape: &[usize],
        start: usize,
        count: usize,
        dtype: DType,
    ) -> Result<TensorId> {
        let t = ckpt.tensor(name, shape)?;
        let cols: usize = shape[1..].iter().product();
        let v = t.to_f32();
        let part = v[start * cols..(start + count) * cols].to_vec();
        let mut part_shape = shape.to_vec();
        part_shape[0] = count;
        let sliced = if part_shape.len() == 1 { part_shape } else { vec![count, cols] };
        self.weight_from(&format!("{name}[{start}:{}]", start + count), &HostTensor::f32(sliced, part), dtype)
    }

    /// A vector (bias, norm weight) from the checkpoint, stored as f32.
    pub fn vector(&mut self, ckpt: &Checkpoint, name: &str, shape: &[usize]) -> Result<TensorId> {
        self.checkpoint_weight(ckpt, name, shape, DType::F32)
    }

    /// [`vector`](Self::vector), or None when the checkpoint lacks it and `present` is false.
    pub fn opt_vector(
        &mut self,
        ckpt: &Checkpoint,
        name: &str,
        shape: &[usize],
        present: bool,
    ) -> Result<Option<TensorId>> {
        if present { self.vector(ckpt, name, shape).map(Some) } else { Ok(None) }
    }

    /// Stacks several checkpoint tensors of the same width along rows into one weight
    /// (e.g. query, key, value projections into one fused QKV matrix).
    pub fn stacked(
        &mut self,
        ckpt: &Checkpoint,
        fused_name: &str,
        parts: &[(String, Vec<usize>)],
        dtype: DType,
    ) -> Result<TensorId> {
        let mut data = Vec::new();
        let mut rows = 0;
        let width = |s: &[usize]| if s.len() == 1 { 1 } else { s.last().copied().unwrap_or(1) };
        let cols = parts.first().map_or(1, |(_, s)| width(s));
        for (name, shape) in parts {
            if width(shape) != cols || shape.len() != parts[0].1.len() {
                return Err(Error::TensorShape {
                    name: name.clone(),
                    expected: parts[0].1.clone(),
                    found: shape.clone(),
                });
            }
            let t = ckpt.tensor(name, shape)?;
            rows += t.elems() / cols;
            data.extend(t.to_f32());
        }
        let shape = if cols == 1 && parts.iter().all(|(_, s)| s.len() == 1) { vec![rows] } else { vec![rows, cols] };
        self.weight_from(fused_name, &HostTensor::f32(shape, data), dtype)
    }

    /// Stores the matrices of a quantizing conversion, once every op is in: a matrix
    /// that only MatMul weights and Embedding tables use (the slots that read blocks) and
    /// whose rows are a multiple of 32 wide is quantized row by row (the fused QKV and
    /// gate/up matrices after stacking: rows are independent); every other one is f16.
    /// Returns how many were quantized. Does nothing for f16 / f32 conversions.
    pub fn finish_weights(&mut self) -> Result<usize> {
        let Some((qdtype, simulated)) = self.weight_dtype.quantized() else { return Ok(0) };
        let fallback = self.weight_dtype.dtype();
        for (id, values) in std::mem::take(&mut self.matrices) {
            let uses: Vec<(OpCode, usize)> = self
                .ops
                .iter()
                .flat_map(|op| {
                    op.inputs.iter().enumerate().filter(|(_, i)| **i == Some(id)).map(|(s, _)| (op.opcode, s))
                })
                .collect();
            let t = &self.tensors[id as usize];
            let quantize = !uses.is_empty()
                && uses.iter().all(|&u| matches!(u, (OpCode::MatMul, 1) | (OpCode::Embedding, 1)))
                && t.shape.len() == 2
                && t.cols().is_multiple_of(QK);
            let name = t.name.clone();
            let (dtype, bytes) = if quantize && simulated {
                let v = quantize_dequantize(&values, qdtype);
                (DType::F32, v.iter().flat_map(|v| v.to_le_bytes()).collect())
            } else if quantize {
                (qdtype, quantize_rows(&values, qdtype))
            } else {
                (fallback, encode(&name, &values, fallback)?)
            };
            self.quantized += usize::from(quantize);
            let t = &mut self.tensors[id as usize];
            t.dtype = dtype;
            t.kind = TensorKind::Weight(bytes);
        }
        Ok(self.quantized)
    }

    /// Appends an op: its typed parameters (encoded as the runtime decodes them), inputs
    /// and output.
    fn op<P: OpParams>(&mut self, params: P, inputs: &[Option<TensorId>], output: TensorId) {
        let mut ins = [None; MAX_OP_INPUTS];
        ins[..inputs.len()].copy_from_slice(inputs);
        self.ops.push(OpDef { opcode: P::OP, inputs: ins, output, params: params.encode() });
    }

    /// `act(x w^T + bias) + residual`; x: [.., k], w: [n, k] -> [.., n].
    pub fn matmul(
        &mut self,
        name: &str,
        x: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        residual: Option<TensorId>,
        act: Activation,
    ) -> TensorId {
        let (m, k) = (self.tensor(x).rows(), self.tensor(x).cols());
        let n = self.tensor(w).rows();
        let mut shape = self.tensor(x).shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let out = self.activation_like(name, shape, x);
        self.op(op::matmul::Params { m, k, n, act, x_col: 0 }, &[Some(x), Some(w), bias, residual], out);
        out
    }

    /// `act(x[:, x_col..x_col + k] w^T + bias) + residual`: a column block of x.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_cols(
        &mut self,
        name: &str,
        x: TensorId,
        x_col: usize,
        w: TensorId,
        bias: Option<TensorId>,
        residual: Option<TensorId>,
        act: Activation,
    ) -> TensorId {
        let m = self.tensor(x).rows();
        let (n, k) = (self.tensor(w).rows(), self.tensor(w).cols());
        let out = self.activation_like(name, vec![m, n], x);
        self.op(op::matmul::Params { m, k, n, act, x_col }, &[Some(x), Some(w), bias, residual], out);
        out
    }

    /// Causal depthwise conv1d over x [t, c] continuing from `state` [k-1, c]; weight [c, k].
    pub fn causal_conv1d(
        &mut self,
        name: &str,
        x: TensorId,
        state: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        act: Activation,
    ) -> TensorId {
        let (c, k) = (self.tensor(w).rows(), self.tensor(w).cols());
        let shape = self.tensor(x).shape.clone();
        let out = self.activation_like(name, shape, x);
        let params = op::causal_conv1d::Params { channels: c, kernel: k, act };
        self.op(params, &[Some(x), Some(state), Some(w), bias], out);
        out
    }

    /// Mamba's selective scan: x, dt, z [t, e]; bc [t, 2n]; a_d [e, n + 1]; state [e, n].
    #[allow(clippy::too_many_arguments)]
    pub fn selective_scan(
        &mut self,
        name: &str,
        x: TensorId,
        dt: TensorId,
        bc: TensorId,
        z: TensorId,
        a_d: TensorId,
        state: TensorId,
    ) -> TensorId {
        let (e, n) = (self.tensor(state).rows(), self.tensor(state).cols());
        let shape = self.tensor(x).shape.clone();
        let out = self.activation_like(name, shape, x);
        self.op(
            op::selective_scan::Params { e, n },
            &[Some(x), Some(dt), Some(bc), Some(z), Some(a_d), Some(state)],
            out,
        );
        out
    }

    /// RWKV token shift: x [t, d], state [d], mix [m, d] -> [t, m * d].
    pub fn token_shift(&mut self, name: &str, x: TensorId, state: TensorId, mix: TensorId) -> TensorId {
        let (m, d) = (self.tensor(mix).rows(), self.tensor(mix).cols());
        let t = self.tensor(x).rows();
        let out = self.activation_like(name, vec![t, m * d], x);
        self.op(op::token_shift::Params { width: d, mixes: m }, &[Some(x), Some(state), Some(mix)], out);
        out
    }

    /// RWKV-4 WKV gated by r: k, v, r [t, a]; u, w [a]; state [3, a].
    #[allow(clippy::too_many_arguments)]
    pub fn wkv(
        &mut self,
        name: &str,
        k: TensorId,
        v: TensorId,
        r: TensorId,
        u: TensorId,
        w: TensorId,
        state: TensorId,
    ) -> TensorId {
        let shape = self.tensor(k).shape.clone();
        let a = self.tensor(k).cols();
        let out = self.activation_like(name, shape, k);
        self.op(op::wkv::Params { width: a }, &[Some(k), Some(v), Some(r), Some(u), Some(w), Some(state)], out);
        out
    }

    /// `a * b + residual`, elementwise.
    pub fn mul(&mut self, name: &str, a: TensorId, b: TensorId, residual: Option<TensorId>) -> TensorId {
        let shape = self.tensor(a).shape.clone();
        let out = self.activation_like(name, shape, a);
        self.op(op::mul::Params, &[Some(a), Some(b), residual], out);
        out
    }

    pub fn layer_norm(
        &mut self,
        name: &str,
        x: TensorId,
        gamma: TensorId,
        beta: Option<TensorId>,
        eps: f32,
    ) -> TensorId {
        let shape = self.tensor(x).shape.clone();
        let dim = self.tensor(x).cols();
        let out = self.activation_like(name, shape, x);
        self.op(op::layer_norm::Params { dim, eps }, &[Some(x), Some(gamma), beta], out);
        out
    }

    pub fn rms_norm(&mut self, name: &str, x: TensorId, gamma: TensorId, eps: f32) -> TensorId {
        let shape = self.tensor(x).shape.clone();
        let dim = self.tensor(x).cols();
        let out = self.activation_like(name, shape, x);
        self.op(op::rms_norm::Params { dim, eps }, &[Some(x), Some(gamma)], out);
        out
    }

    /// Multi-head attention over a fused qkv tensor [t, (heads + 2*kv_heads) * head_dim]
    /// laid out [q | k | v]; output [t, heads * head_dim]. `mask`: per-key [t] (1 keep,
    /// 0 skip); `cache`: persistent K and V caches `[max_context, kv_heads * head_dim]`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        name: &str,
        qkv: TensorId,
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        causal: bool,
        mask: Option<TensorId>,
        cache: Option<(TensorId, TensorId)>,
    ) -> TensorId {
        let t = self.tensor(qkv).rows();
        let out = self.activation_like(name, vec![t, heads * head_dim], qkv);
        let (q_col, k_col, v_col) = (0, heads * head_dim, (heads + kv_heads) * head_dim);
        let scale = 1.0 / (head_dim as f32).sqrt();
        let params = op::attention::Params { heads, kv_heads, head_dim, q_col, k_col, v_col, causal, scale };
        self.op(params, &[Some(qkv), Some(qkv), Some(qkv), mask, cache.map(|c| c.0), cache.map(|c| c.1)], out);
        out
    }

    /// Rows of `table` [vocab, dim] picked by the ids in `ids`.
    pub fn embedding(&mut self, name: &str, ids: TensorId, table: TensorId) -> TensorId {
        let (vocab, dim) = (self.tensor(table).rows(), self.tensor(table).cols());
        let out = self.activation_like(name, vec![self.tensor(ids).elems(), dim], ids);
        self.op(op::embedding::Params { vocab, dim }, &[Some(ids), Some(table)], out);
        out
    }

    /// Rows `pos..pos + n` of `table` [positions, dim] for a call on n tokens at cache
    /// position pos.
    pub fn position_embedding(&mut self, name: &str, table: TensorId) -> TensorId {
        let (positions, dim) = (self.tensor(table).rows(), self.tensor(table).cols());
        let out = self.activation(name, vec![self.max_tokens, dim]);
        self.tensors[out as usize].seq = true;
        self.op(op::position_embedding::Params { positions, dim }, &[Some(table)], out);
        out
    }

    /// `x` with its first `heads` heads (of `head_dim`) rotated by RoPE.
    pub fn rope(&mut self, name: &str, x: TensorId, inv_freq: TensorId, heads: usize, head_dim: usize) -> TensorId {
        let shape = self.tensor(x).shape.clone();
        let out = self.activation_like(name, shape, x);
        self.op(op::rope::Params { heads, head_dim }, &[Some(x), Some(inv_freq)], out);
        out
    }

    /// `act(x[:, :n]) * x[:, n:]` for x [t, 2n].
    pub fn glu(&mut self, name: &str, x: TensorId, act: Activation) -> TensorId {
        let (rows, n) = (self.tensor(x).rows(), self.tensor(x).cols() / 2);
        let out = self.activation_like(name, vec![rows, n], x);
        self.op(op::glu::Params { n, act }, &[Some(x)], out);
        out
    }

    /// Conv2d with kernel = stride = patch over image [1, c, h, w]; weight [dim, c, p, p].
    #[allow(clippy::too_many_arguments)]
    pub fn patch_embed(
        &mut self,
        name: &str,
        image: TensorId,
        w: TensorId,
        bias: Option<TensorId>,
        c: usize,
        h: usize,
        wd: usize,
        patch: usize,
        dim: usize,
    ) -> TensorId {
        let out = self.activation(name, vec![(h / patch) * (wd / patch), dim]);
        let params = op::patch_embed::Params { channels: c, height: h, width: wd, patch, dim };
        self.op(params, &[Some(image), Some(w), bias], out);
        out
    }

    pub fn concat_rows(&mut self, name: &str, a: TensorId, b: TensorId) -> TensorId {
        let cols = self.tensor(b).cols();
        let rows = self.tensor(a).rows() + self.tensor(b).rows();
        let out = self.activation(name, vec![rows, cols]);
        self.op(op::concat_rows::Params, &[Some(a), Some(b)], out);
        out
    }

    pub fn add(&mut self, name: &str, a: TensorId, b: TensorId) -> TensorId {
        let shape = self.tensor(a).shape.clone();
        let out = self.activation_like(name, shape, a);
        self.op(op::add::Params, &[Some(a), Some(b)], out);
        out
    }

    pub fn select_rows(&mut self, name: &str, x: TensorId, start: usize, count: usize) -> TensorId {
        let cols = self.tensor(x).cols();
        let out = self.activation(name, vec![count, cols]);
        self.op(op::select_rows::Params { start, count }, &[Some(x)], out);
        out
    }

    /// Changes the declared shape of an activation (same element count), e.g. to give an
    /// output the `[1, T, D]` shape Hugging Face returns.
    pub fn reshape(&mut self, id: TensorId, shape: Vec<usize>) {
        let t = &mut self.tensors[id as usize];
        debug_assert_eq!(t.elems(), shape.iter().product::<usize>());
        t.shape = shape;
    }

    /// Number of weight elements.
    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().filter(|t| t.is_weight()).map(TensorDef::elems).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_dtype_names_round_trip() {
        for d in [
            WeightDType::F16,
            WeightDType::F32,
            WeightDType::Int8,
            WeightDType::Int4,
            WeightDType::Int8Simulated,
            WeightDType::Int4Simulated,
        ] {
            assert_eq!(WeightDType::from_name(d.name()), Some(d));
        }
        assert_eq!(WeightDType::from_name("int3"), None);
        assert_eq!(WeightDType::Int4.dtype(), DType::F16, "what is not quantized is f16");
    }

    #[test]
    fn quantized_rows_are_blocks_and_dequantize_to_their_values() {
        // [2, 64]: 4 blocks.
        let v: Vec<f32> = (0..128).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect();
        for (dtype, block) in [(DType::Int8, 34), (DType::Int4, 20)] {
            let bytes = quantize_rows(&v, dtype);
            assert_eq!(bytes.len(), 4 * block);
            let deq = quantize_dequantize(&v, dtype);
            let step = if dtype == DType::Int8 { 1.25 / 127.0 } else { 2.5 / 15.0 };
            for (a, b) in deq.iter().zip(&v) {
                assert!((a - b).abs() <= 0.5 * step + 1e-3, "{dtype:?}: {a} vs {b}");
            }
        }
    }

    /// Only matrices used as MatMul weights / Embedding tables with rows of a multiple of
    /// 32 are quantized; the others stay f16.
    #[test]
    fn finish_weights_quantizes_only_block_slots() {
        let mut g = Graph::new("t", String::new(), WeightDType::Int8);
        let x = g.activation("x", vec![2, 32]);
        let w = g.weight_from("w", &HostTensor::f32(vec![4, 32], vec![0.5; 128]), DType::F16).unwrap();
        let gamma = g.weight_from("g", &HostTensor::f32(vec![32], vec![1.0; 32]), DType::F16).unwrap();
        let narrow = g.weight_from("n", &HostTensor::f32(vec![4, 4], vec![1.0; 16]), DType::F16).unwrap();
        let h = g.layer_norm("ln", x, gamma, None, 1e-5);
        let y = g.matmul("y", h, w, None, None, Activation::None);
        g.matmul("z", y, narrow, None, None, Activation::None);
        assert_eq!(g.finish_weights().unwrap(), 1);
        assert_eq!(g.tensor(w).dtype, DType::Int8);
        assert_eq!(g.tensor(w).bytes(), 4 * 34);
        assert!(matches!(&g.tensor(w).kind, TensorKind::Weight(b) if b.len() == 4 * 34));
        assert_eq!((g.tensor(gamma).dtype, g.tensor(narrow).dtype), (DType::F16, DType::F16));
        assert!(matches!(&g.tensor(narrow).kind, TensorKind::Weight(b) if b.len() == 32));
    }
}
