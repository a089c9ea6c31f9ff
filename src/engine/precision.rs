//! The arithmetic of the matrix products, chosen per run.

use serde::{Deserialize, Serialize};

/// How convolutions and linear layers multiply.
///
/// `bf16` is mixed precision as PyTorch's CPU autocast does it: the two operands of every
/// product are rounded to bfloat16 (8 significant bits, round to nearest even) and the products
/// are summed in fp32; activations, master weights, gradients, optimizer state, penalties and
/// the loss all stay fp32. A product of two bf16 numbers is exact in fp32, so the only new error
/// is the rounding of the operands (relative 2^-9 each).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// fp32 operands and sums: the papers' arithmetic.
    #[default]
    Fp32,
    /// bf16 operands, fp32 sums (needs a CPU with AVX512-BF16).
    Bf16,
}

impl Precision {
    /// Whether this is the default, fp32 (records leave it out).
    pub fn is_fp32(&self) -> bool {
        *self == Precision::Fp32
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Checks that this CPU can multiply in this precision, and says with which kernel.
    pub fn kernel(self) -> Result<&'static str, PrecisionError> {
        match self {
            Precision::Fp32 if super::direct_conv::Kernel::detect().is_some() => Ok(
                "fp32: AVX-512 12x32 direct kernel for stride-1 convolutions, gemm crate \
                 (runtime-dispatched AVX-512/AVX2/SSE) for the other products",
            ),
            Precision::Fp32 => Ok("fp32: gemm crate (runtime-dispatched AVX-512/AVX2/SSE)"),
            Precision::Bf16 if super::bf16::has_avx512_bf16() => Ok(
                "bf16: AVX512-BF16 (VDPBF16PS) 12x32 kernels, direct for stride-1 \
                    convolutions, packed for the other products; fp32 accumulation",
            ),
            Precision::Bf16 => Err(PrecisionError::Bf16Unsupported),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Precision {
    type Err = PrecisionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(PrecisionError::Unknown(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    #[error("unknown precision {0:?}: expected fp32 or bf16")]
    Unknown(String),
    #[error(
        "bf16 needs a CPU with AVX512-BF16 (Intel Cooper Lake / Sapphire Rapids or later, AMD \
         Zen 4 or later); this one has none: use fp32"
    )]
    Bf16Unsupported,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions_read_back_what_they_print() {
        for p in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert_eq!(
            "fp16".parse::<Precision>(),
            Err(PrecisionError::Unknown("fp16".into()))
        );
    }

    #[test]
    fn bf16_is_refused_exactly_when_the_cpu_lacks_avx512_bf16() {
        assert!(Precision::Fp32.kernel().is_ok());
        let bf16 = Precision::Bf16.kernel();
        if crate::engine::bf16::has_avx512_bf16() {
            assert!(bf16.unwrap().contains("VDPBF16PS"));
        } else {
            assert_eq!(bf16, Err(PrecisionError::Bf16Unsupported));
        }
    }
}
