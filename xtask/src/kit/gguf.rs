//! A tiny `llama`-architecture model with random weights, written as a GGUF v3 file, so that the
//! kit's llama.cpp image serves a real model without a model hub. The weights come from a fixed
//! seed: the same shape gives the same bytes, hence the same cache and image keys.
//!
//! The vocabulary is llama's SentencePiece layout reduced to its minimum: `<unk>`, `<s>`, `</s>`
//! and the 256 byte tokens, so any text tokenizes (byte fallback) and any output decodes.

use crate::files;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Layout, Mode};

/// GGUF's magic number, the bytes `GGUF`.
const MAGIC: &[u8; 4] = b"GGUF";
/// The format version written.
const VERSION: u32 = 3;
/// Tensor data alignment (GGUF's default; also written as `general.alignment`).
const ALIGNMENT: u64 = 32;
/// `<unk>`, `<s>`, `</s>` and 256 byte tokens.
pub const VOCAB: u32 = 3 + 256;

/// ggml tensor types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    /// 32-bit floats.
    F32,
    /// IEEE half floats (half the bytes of F32 for the same work per token).
    F16,
}

impl TensorType {
    fn id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
        }
    }

    fn size(self) -> u64 {
        match self {
            TensorType::F32 => 4,
            TensorType::F16 => 2,
        }
    }
}

/// The model's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// `llama.embedding_length`.
    pub embedding: u32,
    /// `llama.block_count`.
    pub layers: u32,
    /// `llama.feed_forward_length`.
    pub feed_forward: u32,
    /// `llama.attention.head_count`.
    pub heads: u32,
    /// `llama.attention.head_count_kv`.
    pub kv_heads: u32,
    /// `llama.context_length` (llama-server's default context size).
    pub context: u32,
    /// The type of the weight matrices (norms are always F32).
    pub weights: TensorType,
    /// The seed of the weights.
    pub seed: u64,
}

/// The kit's model: 27 M parameters, 55 MB. One 256-token completion takes about a second on one
/// core of the 2-core development machine (`--threads 1`: 3.4-4.5 ms a token, 0.9-1.6 s a
/// request depending on the machine's load); a bigger model would cost image bytes, while the
/// request's `max_tokens` costs nothing. Four requests on four slots take four times as long (one
/// thread gains nothing from batching), so latency follows the queue.
pub const TINY: Shape = Shape {
    embedding: 512,
    layers: 8,
    feed_forward: 1536,
    heads: 8,
    kv_heads: 8,
    context: 2048,
    weights: TensorType::F16,
    seed: 0x6b73_6361_6c65,
};

/// A metadata value (only the kinds this file needs).
enum Value {
    U32(u32),
    F32(f32),
    Bool(bool),
    Str(String),
    Strings(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
}

/// GGUF metadata value types.
const T_U32: u32 = 4;
const T_I32: u32 = 5;
const T_F32: u32 = 6;
const T_BOOL: u32 = 7;
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;

fn put_u32(out: &mut impl Write, v: u32) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn put_u64(out: &mut impl Write, v: u64) -> io::Result<()> {
    out.write_all(&v.to_le_bytes())
}

fn put_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    put_u64(out, s.len() as u64)?;
    out.write_all(s.as_bytes())
}

fn put_value(out: &mut impl Write, value: &Value) -> io::Result<()> {
    match value {
        Value::U32(v) => {
            put_u32(out, T_U32)?;
            put_u32(out, *v)
        }
        Value::F32(v) => {
            put_u32(out, T_F32)?;
            out.write_all(&v.to_le_bytes())
        }
        Value::Bool(v) => {
            put_u32(out, T_BOOL)?;
            out.write_all(&[u8::from(*v)])
        }
        Value::Str(v) => {
            put_u32(out, T_STRING)?;
            put_str(out, v)
        }
        Value::Strings(vs) => {
            put_u32(out, T_ARRAY)?;
            put_u32(out, T_STRING)?;
            put_u64(out, vs.len() as u64)?;
            vs.iter().try_for_each(|v| put_str(out, v))
        }
        Value::F32s(vs) => {
            put_u32(out, T_ARRAY)?;
            put_u32(out, T_F32)?;
            put_u64(out, vs.len() as u64)?;
            vs.iter().try_for_each(|v| out.write_all(&v.to_le_bytes()))
        }
        Value::I32s(vs) => {
            put_u32(out, T_ARRAY)?;
            put_u32(out, T_I32)?;
            put_u64(out, vs.len() as u64)?;
            vs.iter().try_for_each(|v| out.write_all(&v.to_le_bytes()))
        }
    }
}

fn metadata(shape: &Shape) -> Vec<(&'static str, Value)> {
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    // SentencePiece token types: 2 unknown, 3 control, 6 byte.
    let mut types = vec![2, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    let file_type = match shape.weights {
        TensorType::F32 => 0,
        TensorType::F16 => 1,
    };
    vec![
        ("general.architecture", Value::Str("llama".into())),
        (
            "general.name",
            Value::Str("kscale tiny llama (random)".into()),
        ),
        ("general.alignment", Value::U32(ALIGNMENT as u32)),
        ("general.file_type", Value::U32(file_type)),
        ("llama.context_length", Value::U32(shape.context)),
        ("llama.embedding_length", Value::U32(shape.embedding)),
        ("llama.block_count", Value::U32(shape.layers)),
        ("llama.feed_forward_length", Value::U32(shape.feed_forward)),
        ("llama.attention.head_count", Value::U32(shape.heads)),
        ("llama.attention.head_count_kv", Value::U32(shape.kv_heads)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        (
            "llama.rope.dimension_count",
            Value::U32(shape.embedding / shape.heads),
        ),
        ("llama.vocab_size", Value::U32(VOCAB)),
        ("tokenizer.ggml.model", Value::Str("llama".into())),
        ("tokenizer.ggml.tokens", Value::Strings(tokens)),
        (
            "tokenizer.ggml.scores",
            Value::F32s(vec![0.0; VOCAB as usize]),
        ),
        ("tokenizer.ggml.token_type", Value::I32s(types)),
        ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
    ]
}

/// One tensor: its name, its dimensions (ggml order: the row length first) and type.
struct Tensor {
    name: String,
    dims: Vec<u64>,
    kind: TensorType,
}

impl Tensor {
    fn new(name: String, dims: &[u32], kind: TensorType) -> Self {
        Self {
            name,
            dims: dims.iter().map(|&d| u64::from(d)).collect(),
            kind,
        }
    }

    fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    fn bytes(&self) -> u64 {
        self.elements() * self.kind.size()
    }

    /// Norm weights are ones (RMS norm scales); matrices are uniform in ±sqrt(3 / fan-in), so
    /// each projection keeps unit variance and the random activations stay finite in F16.
    fn is_norm(&self) -> bool {
        self.name.ends_with("norm.weight")
    }
}

fn tensors(shape: &Shape) -> Vec<Tensor> {
    let (e, f, w) = (shape.embedding, shape.feed_forward, shape.weights);
    let kv = e / shape.heads * shape.kv_heads;
    // The embedding doubles as the output projection (no `output.weight`: llama.cpp ties them).
    let mut all = vec![
        Tensor::new("token_embd.weight".into(), &[e, VOCAB], w),
        Tensor::new("output_norm.weight".into(), &[e], TensorType::F32),
    ];
    for n in 0..shape.layers {
        let blk = |part: &str| format!("blk.{n}.{part}.weight");
        all.extend([
            Tensor::new(blk("attn_norm"), &[e], TensorType::F32),
            Tensor::new(blk("attn_q"), &[e, e], w),
            Tensor::new(blk("attn_k"), &[e, kv], w),
            Tensor::new(blk("attn_v"), &[e, kv], w),
            Tensor::new(blk("attn_output"), &[e, e], w),
            Tensor::new(blk("ffn_norm"), &[e], TensorType::F32),
            Tensor::new(blk("ffn_gate"), &[e, f], w),
            Tensor::new(blk("ffn_down"), &[f, e], w),
            Tensor::new(blk("ffn_up"), &[e, f], w),
        ]);
    }
    all
}

fn align(offset: u64) -> u64 {
    offset.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// splitmix64: a tiny, well-mixed generator; enough for weights that only must be deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        // 24 random bits: exactly representable in f32.
        ((self.next() >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// f32 to IEEE half, rounding to nearest; values below half's normal range become zero (weights
/// here are never that small but for a vanishing few, and zero is as good a weight as any).
fn f16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32 - 127 + 15;
    let mantissa = bits & 0x7f_ffff;
    if exp <= 0 {
        return sign;
    }
    if exp >= 0x1f {
        return sign | 0x7c00;
    }
    // Round to nearest on the 13 dropped bits; a carry into the exponent is still correct.
    let half = ((exp as u32) << 10 | (mantissa >> 13)) + u32::from(mantissa & 0x1000 != 0);
    sign | half.min(0x7c00) as u16
}

/// Writes the model to `out`; returns the number of bytes written.
pub fn encode(shape: &Shape, out: &mut impl Write) -> io::Result<u64> {
    let mut out = Counting { inner: out, n: 0 };
    let meta = metadata(shape);
    let tensors = tensors(shape);
    out.write_all(MAGIC)?;
    put_u32(&mut out, VERSION)?;
    put_u64(&mut out, tensors.len() as u64)?;
    put_u64(&mut out, meta.len() as u64)?;
    for (key, value) in &meta {
        put_str(&mut out, key)?;
        put_value(&mut out, value)?;
    }
    let mut offset = 0;
    for t in &tensors {
        put_str(&mut out, &t.name)?;
        put_u32(&mut out, t.dims.len() as u32)?;
        t.dims.iter().try_for_each(|&d| put_u64(&mut out, d))?;
        put_u32(&mut out, t.kind.id())?;
        put_u64(&mut out, offset)?;
        offset = align(offset + t.bytes());
    }
    let mut rng = Rng(shape.seed);
    pad(&mut out)?;
    for t in &tensors {
        let scale = (3.0 / t.dims[0] as f32).sqrt();
        let mut buf = Vec::with_capacity(t.bytes() as usize);
        for _ in 0..t.elements() {
            let v = if t.is_norm() { 1.0 } else { rng.unit() * scale };
            match t.kind {
                TensorType::F32 => buf.extend_from_slice(&v.to_le_bytes()),
                TensorType::F16 => buf.extend_from_slice(&f16_bits(v).to_le_bytes()),
            }
        }
        out.write_all(&buf)?;
        pad(&mut out)?;
    }
    Ok(out.n)
}

/// Zero bytes up to the next multiple of the alignment.
fn pad<W: Write>(out: &mut Counting<W>) -> io::Result<()> {
    let padding = align(out.n) - out.n;
    out.write_all(&vec![0; padding as usize])
}

/// A writer that counts what went through it (offsets and padding depend on it).
struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The content key of a model: its shape and this writer's format (bump on any change here).
pub fn key(shape: &Shape) -> String {
    files::Key::default()
        .text("gguf-writer-1")
        .text(&format!("{shape:?}"))
        .finish()
}

/// Writes the model to `path` (through a `.partial` file, so a crash leaves no half model).
pub fn write(shape: &Shape, path: &Path) -> anyhow::Result<u64> {
    let partial = path.with_extension("partial");
    if let Some(parent) = path.parent() {
        files::mkdir(parent)?;
    }
    let file = std::fs::File::create(&partial)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", partial.display()))?;
    let mut out = io::BufWriter::new(file);
    let n = encode(shape, &mut out)
        .and_then(|n| out.flush().map(|()| n))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| {
        anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            partial.display(),
            path.display()
        )
    })?;
    Ok(n)
}

/// The kit's model file (`<cache>/models/tiny-llama-<key>.gguf`), written unless it exists;
/// returns its path and key.
pub fn ensure(layout: &Layout, mode: Mode) -> anyhow::Result<(PathBuf, String)> {
    let key = key(&TINY);
    let folder = layout.cache.join("models");
    let path = folder.join(format!("tiny-llama-{key}.gguf"));
    if path.is_file() {
        return Ok((path, key));
    }
    if mode == Mode::Check {
        anyhow::bail!("the tiny llama model is not written: {}", super::NOT_BUILT);
    }
    write(&TINY, &path)?;
    // Models of older shapes only take space.
    if let Ok(entries) = std::fs::read_dir(&folder) {
        for entry in entries.filter_map(Result::ok) {
            if entry.path() != path {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok((path, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Shape = Shape {
        embedding: 32,
        layers: 2,
        feed_forward: 64,
        heads: 4,
        kv_heads: 2,
        context: 64,
        weights: TensorType::F16,
        seed: 7,
    };

    /// A minimal GGUF reader: enough to check what the writer wrote.
    struct Reader<'a> {
        data: &'a [u8],
        at: usize,
    }

    impl Reader<'_> {
        fn bytes(&mut self, n: usize) -> &[u8] {
            let s = &self.data[self.at..self.at + n];
            self.at += n;
            s
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.bytes(4).try_into().unwrap())
        }
        fn u64(&mut self) -> u64 {
            u64::from_le_bytes(self.bytes(8).try_into().unwrap())
        }
        fn str(&mut self) -> String {
            let n = self.u64() as usize;
            String::from_utf8(self.bytes(n).to_vec()).unwrap()
        }
        /// Skips a value, returning it as text for scalars and `[n]` for arrays.
        fn value(&mut self, kind: u32) -> String {
            match kind {
                T_U32 => self.u32().to_string(),
                T_I32 => (self.u32() as i32).to_string(),
                T_F32 => f32::from_le_bytes(self.bytes(4).try_into().unwrap()).to_string(),
                T_BOOL => (self.bytes(1)[0] != 0).to_string(),
                T_STRING => self.str(),
                T_ARRAY => {
                    let inner = self.u32();
                    let n = self.u64();
                    let items: Vec<String> = (0..n).map(|_| self.value(inner)).collect();
                    format!("[{}] {}", n, items.get(3).cloned().unwrap_or_default())
                }
                other => panic!("unexpected type {other}"),
            }
        }
    }

    fn model(shape: &Shape) -> Vec<u8> {
        let mut out = Vec::new();
        let n = encode(shape, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        out
    }

    #[test]
    fn header_metadata_and_tensors_are_well_formed() {
        let data = model(&SMALL);
        let mut r = Reader { data: &data, at: 0 };
        assert_eq!(r.bytes(4), b"GGUF");
        assert_eq!(r.u32(), 3);
        let n_tensors = r.u64();
        assert_eq!(n_tensors, 2 + 9 * 2);
        let n_meta = r.u64();
        let mut meta = std::collections::BTreeMap::new();
        for _ in 0..n_meta {
            let key = r.str();
            let kind = r.u32();
            meta.insert(key, r.value(kind));
        }
        assert_eq!(meta["general.architecture"], "llama");
        assert_eq!(meta["llama.block_count"], "2");
        assert_eq!(meta["llama.attention.head_count_kv"], "2");
        assert_eq!(meta["tokenizer.ggml.model"], "llama");
        // 259 tokens; the fourth is the first byte token.
        assert_eq!(meta["tokenizer.ggml.tokens"], "[259] <0x00>");
        assert_eq!(meta["tokenizer.ggml.token_type"], "[259] 6");
        assert_eq!(meta["tokenizer.ggml.scores"], "[259] 0");
        assert_eq!(meta["tokenizer.ggml.eos_token_id"], "2");
        let mut expected_offset = 0;
        let mut last_end = 0;
        let mut names = Vec::new();
        for _ in 0..n_tensors {
            let name = r.str();
            let dims: Vec<u64> = (0..r.u32()).map(|_| r.u64()).collect();
            let kind = r.u32();
            let offset = r.u64();
            assert_eq!(offset % ALIGNMENT, 0, "{name}");
            assert_eq!(offset, expected_offset, "{name}");
            let size = if kind == 0 { 4 } else { 2 };
            last_end = offset + dims.iter().product::<u64>() * size;
            expected_offset = align(last_end);
            if name.ends_with("norm.weight") {
                assert_eq!((kind, dims.as_slice()), (0, &[32][..]), "{name}");
            }
            names.push((name, dims));
        }
        assert_eq!(names[0], ("token_embd.weight".to_string(), vec![32, 259]));
        // Grouped-query attention: K and V project to kv_heads * head size.
        assert!(names.contains(&("blk.1.attn_k.weight".to_string(), vec![32, 16])));
        assert!(names.contains(&("blk.1.ffn_down.weight".to_string(), vec![64, 32])));
        // The data starts aligned after the tensor infos, and the file ends with the last tensor
        // padded to the alignment.
        let data_start = align(r.at as u64);
        assert!(data[r.at..data_start as usize].iter().all(|&b| b == 0));
        assert_eq!(data.len() as u64, align(data_start + last_end));
        // The output norm (second tensor) holds F32 ones.
        let norm = data_start as usize + align(32 * 259 * 2) as usize;
        assert_eq!(&data[norm..norm + 4], &1f32.to_le_bytes());
    }

    #[test]
    fn the_bytes_depend_only_on_the_shape_and_seed() {
        assert_eq!(model(&SMALL), model(&SMALL));
        let other = Shape { seed: 8, ..SMALL };
        assert_ne!(model(&SMALL), model(&other));
        assert_eq!(model(&SMALL).len(), model(&other).len());
        assert_ne!(key(&SMALL), key(&other));
    }

    #[test]
    fn half_floats_round_to_nearest() {
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(0.5), 0x3800);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(1e9), 0x7c00);
        assert_eq!(f16_bits(1e-9), 0);
        // 1 + 2^-11 is halfway between two halves: rounds up here (ties away, good enough).
        assert_eq!(f16_bits(1.0 + 1.5 / 1024.0), 0x3c02);
    }

    #[test]
    fn the_kit_model_is_valid_for_llama() {
        assert_eq!(TINY.embedding % TINY.heads, 0);
        assert_eq!(TINY.heads % TINY.kv_heads, 0);
    }
}
