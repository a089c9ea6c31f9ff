//! A small seeded random number generator (SplitMix64) for shuffling, splitting and
//! augmentation.
//!
//! SplitMix64 passes BigCrush, needs eight bytes of state, and can be seeded from any
//! `u64`, which makes it easy to derive an independent stream per (seed, epoch, sample):
//! that is how the loader's results stay the same whatever the number of threads.

/// SplitMix64 (Steele, Lea and Flood 2014; constants from Vigna's reference code).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose whole sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// A generator for one item of a family, e.g. `Rng::derive(seed, &[epoch, position])`:
    /// each key is mixed in turn, so different keys give unrelated sequences.
    pub fn derive(seed: u64, keys: &[u64]) -> Self {
        let mut state = mix(seed);
        for &key in keys {
            state = mix(state ^ mix(key.wrapping_add(0x6a09_e667_f3bc_c909)));
        }
        Rng::new(state)
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// A uniform integer in `0..n` (Lemire's multiply-and-reject method, no modulo bias).
    /// Returns 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(n);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Shuffles `items` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// The SplitMix64 output function: a bijective mix of all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_matches_the_splitmix64_reference() {
        // Reference values of splitmix64 seeded with 1234567 (Vigna's splitmix64.c).
        let mut rng = Rng::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        assert_eq!(rng.next_u64(), 9817491932198370423);
    }

    #[test]
    fn below_stays_in_range_and_reaches_every_value() {
        let mut rng = Rng::new(7);
        let mut seen = [0usize; 5];
        for _ in 0..1000 {
            seen[rng.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&count| count > 150), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let mut a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        Rng::new(3).shuffle(&mut a);
        Rng::new(3).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        a.sort_unstable();
        assert_eq!(a, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn derived_streams_differ_by_key() {
        let a = Rng::derive(1, &[0, 5]).next_u64();
        let b = Rng::derive(1, &[0, 6]).next_u64();
        let c = Rng::derive(1, &[1, 5]).next_u64();
        assert!(a != b && a != c && b != c);
        assert_eq!(a, Rng::derive(1, &[0, 5]).next_u64());
    }
}
