//! Weight initialization schemes, seeded per parameter name.

use crate::engine::Rng;

/// How convolution and linear layers are initialized.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// PyTorch's defaults: kernel and bias `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (the kernel's
    /// bound is `kaiming_uniform_(a = sqrt(5))`, which reduces to the same value).
    #[default]
    Pytorch,
    /// Keras's defaults: kernel `glorot_uniform`, `U(-b, b)` with
    /// `b = sqrt(6 / (fan_in + fan_out))`; biases zero.
    Keras,
}

/// `fan_in` and `fan_out` of a kernel: input and output channels times the receptive field.
#[derive(Clone, Copy, Debug)]
pub struct Fans {
    pub fan_in: usize,
    pub fan_out: usize,
}

impl Init {
    pub fn kernel(self, fans: Fans, len: usize, rng: &mut Rng) -> Vec<f32> {
        let bound = match self {
            Init::Pytorch => 1.0 / (fans.fan_in as f32).sqrt(),
            Init::Keras => (6.0 / (fans.fan_in + fans.fan_out) as f32).sqrt(),
        };
        (0..len).map(|_| rng.uniform(-bound, bound)).collect()
    }

    pub fn bias(self, fans: Fans, len: usize, rng: &mut Rng) -> Vec<f32> {
        match self {
            Init::Pytorch => {
                let bound = 1.0 / (fans.fan_in as f32).sqrt();
                (0..len).map(|_| rng.uniform(-bound, bound)).collect()
            }
            Init::Keras => vec![0.0; len],
        }
    }
}

/// A generator for one parameter, derived from the model seed and the parameter's name, so
/// adding a layer to a model leaves the initial values of the others unchanged.
pub fn rng_for(seed: u64, name: &str) -> Rng {
    // FNV-1a: a fixed, documented hash (std's hasher may change between releases).
    let hash = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    });
    Rng::derive(seed, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytorch_bounds_follow_fan_in_and_keras_bounds_follow_both_fans() {
        let fans = Fans {
            fan_in: 100,
            fan_out: 50,
        };
        let mut rng = Rng::new(0);
        let torch = Init::Pytorch.kernel(fans, 10_000, &mut rng);
        let keras = Init::Keras.kernel(fans, 10_000, &mut rng);
        let max = |v: &[f32]| v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(max(&torch) <= 0.1 && max(&torch) > 0.099);
        let glorot = (6.0f32 / 150.0).sqrt();
        assert!(max(&keras) <= glorot && max(&keras) > 0.99 * glorot);
        assert!(Init::Keras
            .bias(fans, 5, &mut rng)
            .iter()
            .all(|&b| b == 0.0));
    }

    #[test]
    fn each_parameter_name_gets_its_own_stream() {
        assert_eq!(rng_for(1, "conv1.weight"), rng_for(1, "conv1.weight"));
        assert_ne!(rng_for(1, "conv1.weight"), rng_for(1, "conv2.weight"));
        assert_ne!(rng_for(1, "conv1.weight"), rng_for(2, "conv1.weight"));
    }
}
