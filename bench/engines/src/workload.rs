//! The ledger's write pattern on its key-value engine, once the history (records,
//! Merkle nodes, blocks) lives in segment files: per record, the key-value traffic
//! `docs/performance.md` measured by class (run 5's breakdown), generated
//! deterministically from the record's number.
//!
//! New keys per record: the record index `L` (9 → 8 bytes), the replay index `Sx`
//! (34 → 6), the records-by-subject index `Ss` (28 → 52), one batch event `Sv`
//! (38 → 33). Overwritten keys per record: one profile or holding among a hot set that
//! grows with the ledger (one per 20 records; 34 → 80), and a batch-index path of
//! `PATH` sparse-Merkle nodes (`Sz` ‖ depth ‖ prefix → 32-byte hash) for one batch of a
//! set that grows the same way: the upper nodes are shared by every path, so they are
//! rewritten by every block, as the real map's are.

use sha2::{Digest, Sha256};

/// Depth of the batch-index path rewritten per record.
pub const PATH: u32 = 20;

fn h(tag: &[u8], n: u64) -> [u8; 32] {
    let mut d = Sha256::new();
    d.update(tag);
    d.update(n.to_be_bytes());
    d.finalize().into()
}

/// The writes of one record into `out` (key, value).
pub fn record_writes(i: u64, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    let id = h(b"id", i);
    let mut l = vec![b'L'];
    l.extend_from_slice(&i.to_be_bytes());
    out.push((l, i.to_le_bytes().to_vec()));
    let mut x = vec![b'S', b'x'];
    x.extend_from_slice(&id);
    out.push((x, id[..6].to_vec()));
    let subject = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % (i / 100 + 1);
    let mut s = vec![b'S', b's'];
    s.extend_from_slice(&h(b"subject", subject)[..18]);
    s.extend_from_slice(&i.to_be_bytes());
    out.push((s, id[..26].repeat(2)));
    let batch = (i.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 33) % (i / 20 + 1);
    let mut v = vec![b'S', b'v'];
    v.extend_from_slice(&h(b"batch", batch));
    v.extend_from_slice(&(i as u32).to_be_bytes());
    out.push((v, [&id[..], &id[..1]].concat()));
    let hot = (i.wrapping_mul(0x94d0_49bb_1331_11eb) >> 29) % (i / 20 + 1);
    let mut p = vec![b'S', b'p'];
    p.extend_from_slice(&h(b"hot", hot));
    out.push((p, [id, id, id].concat()[..80].to_vec()));
    let leaf = u64::from_be_bytes(h(b"batch", batch)[..8].try_into().expect("8 bytes"));
    for depth in 0..PATH {
        let mut z = vec![b'S', b'z', depth as u8];
        let prefix = if depth == 0 { 0 } else { leaf >> (64 - depth) };
        z.extend_from_slice(&prefix.to_be_bytes());
        out.push((z, h(b"node", i ^ u64::from(depth)).to_vec()));
    }
}

/// A key that exists once `records` records are written (for lookups): a replay-index
/// entry of an earlier record.
pub fn lookup_key(records: u64, n: u64) -> Vec<u8> {
    let i = n.wrapping_mul(0x2545_f491_4f6c_dd1d) % records.max(1);
    let mut x = vec![b'S', b'x'];
    x.extend_from_slice(&h(b"id", i));
    x
}
