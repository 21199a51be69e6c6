//! RFC 6962 / RFC 9162 Merkle tree arithmetic over audit records, without I/O: leaf and node
//! hashes, an append-only frontier that gives the root of every prefix in O(log n) memory,
//! inclusion proofs and their verification.

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn sha(parts: &[&[u8]]) -> Hash {
    let mut c = Context::new(&SHA256);
    for p in parts {
        c.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha(&[&[0u8], data])
}

/// The hash of an inner node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha(&[&[1u8], left, right])
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    sha(&[])
}

/// The right edge of a tree being appended to: one subtree root per set bit of the size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            if let Some(left) = self.stack.pop() {
                h = node_hash(&left, &h);
            }
            s >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

fn split(n: usize) -> usize {
    // the largest power of two smaller than n (n >= 2)
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// The root of a list of leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Vec<Hash> {
    let mut path = Vec::new();
    let mut lo = 0;
    let mut hi = leaves.len();
    let mut m = index;
    // walk down, collecting siblings; the RFC lists them bottom-up
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            stack.push(root_of(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            stack.push(root_of(&leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    while let Some(h) = stack.pop() {
        path.push(h);
    }
    path
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut fnn = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fnn & 1 == 1 || fnn == sn {
            r = node_hash(p, &r);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("record {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn frontier_matches_recursive_root_for_every_size() {
        let all = leaves(70);
        let mut f = Frontier::new();
        assert_eq!(f.root(), empty_root());
        for (i, l) in all.iter().enumerate() {
            f.push(*l);
            assert_eq!(f.root(), root_of(&all[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn rfc6962_shape_for_three_leaves() {
        let l = leaves(3);
        assert_eq!(root_of(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        for n in 1..40usize {
            let l = leaves(n);
            let root = root_of(&l);
            for i in 0..n {
                let p = inclusion_proof(&l, i);
                assert!(
                    verify_inclusion(i as u64, n as u64, &l[i], &p, &root),
                    "n {n} i {i}"
                );
                let other = leaf_hash(b"other");
                assert!(!verify_inclusion(i as u64, n as u64, &other, &p, &root));
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(i as u64, n as u64, &l[i], &bad, &root));
                }
                if n > 1 {
                    assert!(
                        !verify_inclusion(((i + 1) % n) as u64, n as u64, &l[i], &p, &root)
                            || l[i] == l[(i + 1) % n]
                    );
                }
            }
        }
    }
}
