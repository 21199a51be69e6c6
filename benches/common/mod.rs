//! What every benchmark prints beside its figures: this machine's own limits.

pub use isogate::cli::bench::sha256_throughput;

/// The number of cores.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
