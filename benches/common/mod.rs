//! What every benchmark prints beside its figures: this machine's own limits.

use std::time::Instant;

/// One core's SHA-256 throughput, in MiB/s, measured for about a second.
pub fn sha256_throughput() -> f64 {
    let buf = vec![0x5au8; 64 << 20];
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < 1.0 {
        std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, &buf));
        n += buf.len() as u64;
    }
    n as f64 / t.elapsed().as_secs_f64() / (1 << 20) as f64
}

/// The number of cores.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
