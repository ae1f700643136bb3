//! RFC 9162 Merkle trees: hashes, inclusion and consistency proofs and their
//! verification (§2.1), and the compact frontier that lets a ledger append leaves and
//! know its root without keeping the whole tree in memory.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use xinlian_genesis::Hash32;

pub fn empty_root() -> Hash32 {
    Hash32(Sha256::digest([]).into())
}

pub fn leaf_hash(entry: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    Hash32(h.finalize().into())
}

pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash32(h.finalize().into())
}

/// The largest power of two strictly below `n` (n > 1): where RFC 9162 splits a list.
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// Access to the roots of perfect, aligned subtrees: level `l`, index `i` covers
/// leaves `[i·2^l, (i+1)·2^l)`. Every left branch in RFC 9162's recursion is such a
/// subtree, so a store that keeps them answers any root or proof in O(log n) reads.
pub trait Subtrees {
    type Error;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash32, Self::Error>;
}

/// Leaf hashes held in memory (blocks, tests).
pub struct Leaves<'a>(pub &'a [Hash32]);

impl Subtrees for Leaves<'_> {
    type Error = std::convert::Infallible;
    fn perfect(&self, level: u32, index: u64) -> Result<Hash32, Self::Error> {
        if level == 0 {
            return Ok(self.0[index as usize]);
        }
        let l = self.perfect(level - 1, 2 * index)?;
        let r = self.perfect(level - 1, 2 * index + 1)?;
        Ok(node_hash(&l, &r))
    }
}

/// MTH of leaves `[start, end)`, `end > start`.
pub fn range_hash<S: Subtrees>(s: &S, start: u64, end: u64) -> Result<Hash32, S::Error> {
    let n = end - start;
    debug_assert!(n > 0);
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return s.perfect(n.trailing_zeros(), start / n);
    }
    let k = split(n);
    Ok(node_hash(
        &range_hash(s, start, start + k)?,
        &range_hash(s, start + k, end)?,
    ))
}

pub fn root<S: Subtrees>(s: &S, size: u64) -> Result<Hash32, S::Error> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(s, 0, size)
    }
}

pub fn root_of(leaves: &[Hash32]) -> Hash32 {
    match root(&Leaves(leaves), leaves.len() as u64) {
        Ok(h) => h,
        Err(never) => match never {},
    }
}

/// Why a proof could not be built: sizes no proof exists for (a request's, refused
/// rather than asserted), or the subtrees could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError<E> {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < first <= second; got {first} and {second}")]
    Sizes { first: u64, second: u64 },
    #[error(transparent)]
    Subtrees(E),
}

/// RFC 9162 PATH(m, D[n]): the audit path of leaf `index` in a tree of `size`.
pub fn inclusion_proof<S: Subtrees>(
    s: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash32>, BuildError<S::Error>> {
    if index >= size {
        return Err(BuildError::IndexBeyondSize { index, size });
    }
    let mut out = Vec::new();
    path(s, index, 0, size, &mut out).map_err(BuildError::Subtrees)?;
    Ok(out)
}

fn path<S: Subtrees>(
    s: &S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash32>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(s, m, start, start + k, out)?;
        out.push(range_hash(s, start + k, end)?);
    } else {
        path(s, m - k, start + k, end, out)?;
        out.push(range_hash(s, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 PROOF(m, D[n]): shows the tree of `size1` is a prefix of the tree of `size2`.
pub fn consistency_proof<S: Subtrees>(
    s: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash32>, BuildError<S::Error>> {
    if size1 == 0 || size1 > size2 {
        return Err(BuildError::Sizes {
            first: size1,
            second: size2,
        });
    }
    let mut out = Vec::new();
    subproof(s, size1, 0, size2, true, &mut out).map_err(BuildError::Subtrees)?;
    Ok(out)
}

fn subproof<S: Subtrees>(
    s: &S,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    out: &mut Vec<Hash32>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !complete {
            out.push(range_hash(s, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(s, m, start, start + k, complete, out)?;
        out.push(range_hash(s, start + k, end)?);
    } else {
        subproof(s, m - k, start + k, end, false, out)?;
        out.push(range_hash(s, start, start + k)?);
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("leaf index {index} is not below tree size {size}")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("proof has the wrong number of hashes for this index and size")]
    WrongLength,
    #[error("proof leads to root {computed}, expected {expected}")]
    RootMismatch { computed: Hash32, expected: Hash32 },
    #[error("older tree size {size1} exceeds newer size {size2}")]
    SizesReversed { size1: u64, size2: u64 },
    #[error("a consistency proof from an empty tree proves nothing")]
    FromEmpty,
    #[error("equal sizes need an empty proof and equal roots")]
    EqualSizes,
    #[error("consistency proof does not reproduce the older root {0}")]
    OldRootMismatch(Hash32),
    #[error("consistency proof does not reproduce the newer root {0}")]
    NewRootMismatch(Hash32),
}

/// RFC 9162 §2.1.3.2.
pub fn verify_inclusion(
    leaf: &Hash32,
    index: u64,
    size: u64,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2. A proof from size 0 is refused (it could prove nothing).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash32,
    root2: &Hash32,
    proof: &[Hash32],
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError::SizesReversed { size1, size2 });
    }
    if size1 == 0 {
        return Err(ProofError::FromEmpty);
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::EqualSizes)
        };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if size1.is_power_of_two() {
        path.push(*root1);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (size1 - 1, size2 - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != *root1 {
        return Err(ProofError::OldRootMismatch(*root1));
    }
    if sr != *root2 {
        return Err(ProofError::NewRootMismatch(*root2));
    }
    Ok(())
}

/// The roots of the perfect subtrees along the right edge of a tree (one per set bit
/// of its size, largest first): enough to append and to compute the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash32>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns every perfect subtree completed by it as
    /// `(level, index, hash)`, starting with the leaf itself at level 0.
    pub fn append(&mut self, leaf: Hash32) -> Vec<(u32, u64, Hash32)> {
        let mut made = vec![(0, self.size, leaf)];
        let mut h = leaf;
        let mut level = 0u32;
        // Each trailing 1 bit of the old size is a peak of equal height to merge with.
        while (self.size >> level) & 1 == 1 {
            let left = self.peaks.pop().expect("one peak per set bit");
            h = node_hash(&left, &h);
            level += 1;
            made.push((level, self.size >> level, h));
        }
        self.peaks.push(h);
        self.size += 1;
        debug_assert_eq!(self.peaks.len() as u32, self.size.count_ones());
        made
    }

    pub fn root(&self) -> Hash32 {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(last) => it.fold(*last, |acc, p| node_hash(p, &acc)),
        }
    }

    /// Rebuilds the frontier of a tree of `size` from its stored perfect subtrees.
    pub fn from_subtrees<S: Subtrees>(s: &S, size: u64) -> Result<Frontier, S::Error> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if (size >> level) & 1 == 1 {
                peaks.push(s.perfect(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Frontier { size, peaks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn frontier_matches_recursive_root_and_proofs_verify() {
        let all = leaves(70);
        let mut f = Frontier::default();
        assert_eq!(f.root(), empty_root());
        for n in 1..=all.len() {
            f.append(all[n - 1]);
            let l = &all[..n];
            let r = root_of(l);
            assert_eq!(f.root(), r, "size {n}");
            assert_eq!(Frontier::from_subtrees(&Leaves(l), n as u64).unwrap(), f);
            for i in [0, n / 2, n - 1] {
                let p = inclusion_proof(&Leaves(l), i as u64, n as u64).unwrap();
                verify_inclusion(&l[i], i as u64, n as u64, &p, &r).unwrap();
            }
            for m in [1, n / 3 + 1, n] {
                let p = consistency_proof(&Leaves(l), m as u64, n as u64).unwrap();
                verify_consistency(m as u64, n as u64, &root_of(&all[..m]), &r, &p).unwrap();
            }
        }
    }

    /// Sizes no proof exists for, as a request may give them, are refused with an
    /// error (they used to trip an assertion).
    #[test]
    fn proofs_of_impossible_sizes_are_refused() {
        let l = leaves(5);
        assert_eq!(
            inclusion_proof(&Leaves(&l), 5, 5),
            Err(BuildError::IndexBeyondSize { index: 5, size: 5 })
        );
        assert_eq!(
            inclusion_proof(&Leaves(&l), 0, 0),
            Err(BuildError::IndexBeyondSize { index: 0, size: 0 })
        );
        for (first, second) in [(0, 3), (4, 3)] {
            assert_eq!(
                consistency_proof(&Leaves(&l), first, second),
                Err(BuildError::Sizes { first, second })
            );
        }
    }
}
