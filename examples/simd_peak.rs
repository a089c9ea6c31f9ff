//! The arithmetic peaks of this CPU's vector units: fp32 fused multiply-adds (AVX-512 FMA) and
//! bf16 dot products (AVX512-BF16 `VDPBF16PS`, 32 multiply-adds into 16 fp32 sums), on one
//! thread and on every core. Each thread runs 12 independent accumulator chains on values held
//! in registers, so memory plays no part: this is the ceiling a matrix product can approach.
//!
//! Whether bf16 pays without AMX depends on the core: where `VDPBF16PS` issues as often as an
//! fp32 FMA it doubles the multiply-adds per cycle; where it issues less often (on the Intel
//! Xeon of `results/machines.md`, once every two cycles against two FMAs per cycle: half the
//! fp32 peak) a bf16 product is slower than an fp32 one before any conversion is paid.
//!
//!     cargo run --release --example simd_peak

#[cfg(target_arch = "x86_64")]
mod peaks {
    use std::arch::x86_64::*;
    use std::time::Instant;

    /// Loop iterations per measurement: about a second on a 3 GHz core.
    const ITERATIONS: usize = 80_000_000;
    const CHAINS: usize = 12;

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn fp32_fma(iterations: usize) -> f32 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        let (a, b) = (_mm512_set1_ps(1.0001), _mm512_set1_ps(0.9999));
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm512_fmadd_ps(a, b, *chain);
            }
            // Keeps the compiler from collapsing the loop.
            std::arch::asm!("", options(nomem, nostack));
        }
        acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
    }

    /// # Safety
    /// The CPU must have AVX-512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn bf16_dot(iterations: usize) -> f32 {
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        let a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1.0001), _mm512_set1_ps(0.9999));
        let b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.9999), _mm512_set1_ps(1.0001));
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm512_dpbf16_ps(*chain, a, b);
            }
            std::arch::asm!("", options(nomem, nostack));
        }
        acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
    }

    /// GFLOP/s of `kernel` on `threads` threads at once; `flops` per iteration per thread.
    fn measure(threads: usize, flops: f64, kernel: fn(usize) -> f32) -> f64 {
        let start = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|_| std::thread::spawn(move || kernel(ITERATIONS)))
            .collect();
        for handle in handles {
            std::hint::black_box(handle.join().expect("kernel thread"));
        }
        threads as f64 * ITERATIONS as f64 * flops / start.elapsed().as_secs_f64() / 1e9
    }

    pub fn main() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if !is_x86_feature_detected!("avx512f") {
            println!("no AVX-512F on this CPU: nothing to measure");
            return;
        }
        // SAFETY: AVX-512F was detected above.
        let fp32: fn(usize) -> f32 = |n| unsafe { fp32_fma(n) };
        let fma_flops = (CHAINS * 16 * 2) as f64;
        let fp32_peak = [1, cores].map(|t| measure(t, fma_flops, fp32));
        println!(
            "fp32 FMA (AVX-512):           1 thread {:6.0} GFLOP/s, {cores} threads {:6.0} GFLOP/s",
            fp32_peak[0], fp32_peak[1]
        );
        if !is_x86_feature_detected!("avx512bf16") {
            println!("bf16 dot products: no AVX512-BF16 on this CPU");
            return;
        }
        // SAFETY: AVX-512F and AVX512-BF16 were detected above.
        let bf16: fn(usize) -> f32 = |n| unsafe { bf16_dot(n) };
        let dot_flops = (CHAINS * 32 * 2) as f64;
        let bf16_peak = [1, cores].map(|t| measure(t, dot_flops, bf16));
        println!(
            "bf16 VDPBF16PS (AVX512-BF16): 1 thread {:6.0} GFLOP/s, {cores} threads {:6.0} GFLOP/s",
            bf16_peak[0], bf16_peak[1]
        );
        println!(
            "bf16 / fp32 peak: {:.2}x on {cores} threads",
            bf16_peak[1] / fp32_peak[1]
        );
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    peaks::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("only x86-64 vector units are measured");
}
