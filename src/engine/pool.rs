//! The thread pool every kernel runs on.

/// A fixed-size pool of worker threads. Work submitted through [`ThreadPool::install`] (matrix
/// multiplies, batched kernels, optimizer updates) runs on these threads and no others.
///
/// Results depend on the thread count only through the order of floating-point sums inside
/// matrix multiplies: the same seed and the same thread count give bit-identical runs on the
/// same kind of processor (the matrix-multiply kernels are chosen at run time by CPU features,
/// AVX-512 or AVX2).
pub struct ThreadPool {
    pool: rayon::ThreadPool,
}

impl ThreadPool {
    /// A pool of `threads` workers; 0 means one per available core.
    pub fn new(threads: usize) -> Result<Self, rayon::ThreadPoolBuildError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("regstudy-worker-{i}"))
            .build()?;
        Ok(Self { pool })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work` with this pool as the current one.
    pub fn install<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        self.pool.install(work)
    }
}
