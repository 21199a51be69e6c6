//! RFC 6962 / RFC 9162 Merkle tree arithmetic over audit records, without I/O: leaf and node
//! hashes, an append-only frontier that gives the root of every prefix in O(log n) memory,
//! inclusion proofs and their verification.
//!
//! The hashing is RFC 6962 §2.1 exactly (leaf prefix 0x00, node prefix 0x01, split at the
//! largest power of two below n, empty tree = the hash of nothing) with the hash of the log's
//! suite: SHA-256 under `default`, as RFC 6962, and SM3 (GB/T 32905) under `gm`, the same
//! tree with the national hash in its place. The tests check the SHA-256 tree against the
//! certificate-transparency reference vectors (leaf hashes, the roots of trees of 0 to 8
//! leaves, published inclusion proofs) and the SM3 tree against SM3 computed by hand over the
//! same prefixes. There are no consistency proofs here.
//!
//! ```text
//!  record bytes ─► leaf_hash ─► Frontier::push ─► root (checkpoints)
//!  leaves ─► inclusion_proof(index) ─► verify_inclusion(index, size, leaf, path, root)
//! ```

use crate::keys::suite::{Hasher, Suite};

/// A tree hash: 32 bytes of SHA-256 or SM3, by the log's suite.
pub type Hash = [u8; 32];

fn hash(suite: Suite, parts: &[&[u8]]) -> Hash {
    let mut c = Hasher::new(suite);
    for p in parts {
        c.update(p);
    }
    c.finish()
}

/// The hash of a leaf: H(0x00 || data), H the suite's hash.
pub fn leaf_hash(suite: Suite, data: &[u8]) -> Hash {
    hash(suite, &[&[0u8], data])
}

/// The hash of an inner node: H(0x01 || left || right), H the suite's hash.
pub fn node_hash(suite: Suite, left: &Hash, right: &Hash) -> Hash {
    hash(suite, &[&[1u8], left, right])
}

/// The root of the empty tree: the suite's hash of nothing.
pub fn empty_root(suite: Suite) -> Hash {
    hash(suite, &[])
}

/// The right edge of a tree being appended to: one subtree root per set bit of the size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    suite: Suite,
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    /// An empty tree hashed with `suite`'s hash.
    pub fn new(suite: Suite) -> Frontier {
        Frontier {
            suite,
            size: 0,
            stack: Vec::new(),
        }
    }

    /// The suite whose hash the tree uses.
    pub fn suite(&self) -> Suite {
        self.suite
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
                h = node_hash(self.suite, &left, &h);
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
            return empty_root(self.suite);
        };
        it.fold(*last, |acc, left| node_hash(self.suite, left, &acc))
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

/// The root of a list of leaf hashes, inner nodes hashed with `suite`'s hash.
pub fn root_of(suite: Suite, leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(suite),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(
                suite,
                &root_of(suite, &leaves[..k]),
                &root_of(suite, &leaves[k..]),
            )
        }
    }
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(suite: Suite, leaves: &[Hash], index: usize) -> Vec<Hash> {
    let mut path = Vec::new();
    let mut lo = 0;
    let mut hi = leaves.len();
    let mut m = index;
    // walk down, collecting siblings; the RFC lists them bottom-up
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if m < k {
            stack.push(root_of(suite, &leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            stack.push(root_of(suite, &leaves[lo..lo + k]));
            lo += k;
            m -= k;
        }
    }
    while let Some(h) = stack.pop() {
        path.push(h);
    }
    path
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2), inner nodes hashed with `suite`'s hash.
pub fn verify_inclusion(
    suite: Suite,
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> bool {
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
            r = node_hash(suite, p, &r);
            if fnn & 1 == 0 {
                while fnn & 1 == 0 && fnn != 0 {
                    fnn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(suite, &r, p);
        }
        fnn >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Suite = Suite::Default;

    fn leaves(suite: Suite, n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(suite, format!("record {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn frontier_matches_recursive_root_for_every_size() {
        for suite in Suite::ALL {
            let all = leaves(suite, 70);
            let mut f = Frontier::new(suite);
            assert_eq!(f.root(), empty_root(suite));
            for (i, l) in all.iter().enumerate() {
                f.push(*l);
                assert_eq!(f.root(), root_of(suite, &all[..=i]), "size {}", i + 1);
            }
        }
    }

    #[test]
    fn the_gm_tree_is_rfc6962_with_sm3_in_place_of_sha256() {
        use crate::keys::suite::digest;
        let sm3 = |b: &[u8]| digest(Suite::Gm, b);
        // SM3 of nothing, GB/T 32905 as OpenSSL prints it (`openssl dgst -sm3 /dev/null`)
        assert_eq!(
            hex::encode(empty_root(Suite::Gm)),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
        let a = leaf_hash(Suite::Gm, b"a");
        assert_eq!(a, sm3(b"\x00a"));
        let b = leaf_hash(Suite::Gm, b"b");
        let c = leaf_hash(Suite::Gm, b"c");
        let ab = sm3(&[&[1u8][..], &a, &b].concat());
        assert_eq!(root_of(Suite::Gm, &[a, b]), ab);
        let abc = sm3(&[&[1u8][..], &ab, &c].concat());
        assert_eq!(root_of(Suite::Gm, &[a, b, c]), abc);
        // and differs from the SHA-256 tree over the same records
        assert_ne!(root_of(Suite::Gm, &[a, b, c]), root_of(D, &[a, b, c]));
        assert!(verify_inclusion(Suite::Gm, 2, 3, &c, &[ab], &abc));
        assert!(!verify_inclusion(D, 2, 3, &c, &[ab], &abc));
    }

    /// Decodes 64 hex digits of a test vector.
    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    /// The certificate-transparency reference vectors (RFC 6962 hashing), as published in
    /// github.com/transparency-dev/merkle `testonly/constants.go` (`LeafInputs`,
    /// `NodeHashes`, `RootHashes`) and `proof/verify_test.go` (`inclusionProofs`), the
    /// same data as certificate-transparency's `cpp/merkletree/merkle_tree_test.cc` and
    /// trillian's `merkle/testonly`.
    const CT_LEAF_INPUTS: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    /// `NodeHashes()[0]`: the leaf hashes of [`CT_LEAF_INPUTS`].
    const CT_LEAF_HASHES: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ];
    /// `RootHashes()`: the root of the tree of the first N inputs, N = 0..=8.
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    /// `inclusionProofs`: (leaf number, 1-based as published; tree size; audit path).
    const CT_INCLUSION: [(usize, usize, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            3,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            2,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    fn ct_leaves() -> Vec<Hash> {
        CT_LEAF_INPUTS
            .iter()
            .map(|x| leaf_hash(D, &hex::decode(x).unwrap()))
            .collect()
    }

    #[test]
    fn rfc6962_reference_leaf_hashes() {
        for (leaf, want) in ct_leaves().iter().zip(CT_LEAF_HASHES) {
            assert_eq!(hex::encode(leaf), want);
        }
    }

    #[test]
    fn rfc6962_reference_roots_for_every_size() {
        let l = ct_leaves();
        let mut f = Frontier::new(D);
        assert_eq!(hex::encode(f.root()), CT_ROOTS[0]);
        assert_eq!(hex::encode(root_of(D, &[])), CT_ROOTS[0]);
        for n in 1..=8 {
            f.push(l[n - 1]);
            assert_eq!(hex::encode(root_of(D, &l[..n])), CT_ROOTS[n], "size {n}");
            assert_eq!(hex::encode(f.root()), CT_ROOTS[n], "frontier, size {n}");
        }
    }

    #[test]
    fn rfc6962_reference_inclusion_proofs() {
        let l = ct_leaves();
        for (leaf, size, path) in CT_INCLUSION {
            let index = leaf - 1;
            let want: Vec<Hash> = path.iter().map(|x| h(x)).collect();
            let root = h(CT_ROOTS[size]);
            assert_eq!(
                inclusion_proof(D, &l[..size], index),
                want,
                "leaf {index} of {size}"
            );
            assert!(verify_inclusion(
                D,
                index as u64,
                size as u64,
                &l[index],
                &want,
                &root
            ));
            // the corruptions the reference verifier's tests try must all fail
            let (i, n) = (index as u64, size as u64);
            let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
                (i + 1, n, l[index], want.clone(), root),
                (i ^ 2, n, l[index], want.clone(), root),
                (i, n * 2, l[index], want.clone(), root),
                (i, n / 2, l[index], want.clone(), root),
                (i, n, leaf_hash(D, b"WrongLeaf"), want.clone(), root),
                (i, n, l[index], want.clone(), h(CT_ROOTS[0])),
                (i, n, l[index], [want.clone(), vec![root]].concat(), root),
                (i, n, l[index], [vec![root], want.clone()].concat(), root),
            ];
            if i > 0 {
                probes.push((i - 1, n, l[index], want.clone(), root));
            }
            for k in 0..want.len() {
                let mut bad = want.clone();
                bad[k][0] ^= 8;
                probes.push((i, n, l[index], bad, root));
            }
            if !want.is_empty() {
                probes.push((i, n, l[index], want[..want.len() - 1].to_vec(), root));
            }
            for (pi, pn, leaf, proof, root) in probes {
                assert!(
                    !verify_inclusion(D, pi, pn, &leaf, &proof, &root),
                    "corrupted probe verified: leaf {pi} of {pn}, proof {proof:02x?}"
                );
            }
        }
    }

    #[test]
    fn rfc6962_shape_for_three_leaves() {
        let l = leaves(D, 3);
        assert_eq!(
            root_of(D, &l),
            node_hash(D, &node_hash(D, &l[0], &l[1]), &l[2])
        );
    }

    #[test]
    fn every_inclusion_proof_verifies_and_tampering_fails() {
        for (s, n) in Suite::ALL
            .into_iter()
            .flat_map(|s| (1..40usize).map(move |n| (s, n)))
        {
            let l = leaves(s, n);
            let root = root_of(s, &l);
            for i in 0..n {
                let p = inclusion_proof(s, &l, i);
                assert!(
                    verify_inclusion(s, i as u64, n as u64, &l[i], &p, &root),
                    "n {n} i {i}"
                );
                let other = leaf_hash(s, b"other");
                assert!(!verify_inclusion(s, i as u64, n as u64, &other, &p, &root));
                if !p.is_empty() {
                    let mut bad = p.clone();
                    bad[0][0] ^= 1;
                    assert!(!verify_inclusion(s, i as u64, n as u64, &l[i], &bad, &root));
                }
                if n > 1 {
                    assert!(
                        !verify_inclusion(s, ((i + 1) % n) as u64, n as u64, &l[i], &p, &root)
                            || l[i] == l[(i + 1) % n]
                    );
                }
            }
        }
    }
}
