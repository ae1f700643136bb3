//! The segment logs against an in-memory model, with crashes and reopens (the way
//! sled's `fuzz_model` drives its tree), and each kind of damage with its named error.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;
use xinlian_store::segments::{
    FixedLog, LogEnd, LogShape, SEGMENT_HEADER_BYTES, SegmentError, SegmentLog,
};

/// Small segments, so that a few dozen entries cross several of them.
const SHAPE: LogShape = LogShape {
    name: "records",
    first_seq: 0,
    segment_bytes: 512,
    max_entry: 200,
};

#[derive(Clone, Debug)]
enum Op {
    /// Append an entry of this length (its bytes derive from its number).
    Append(usize),
    /// Sync and commit: what was appended becomes the committed end.
    Commit,
    /// A commit that failed after appending: the log is rewound to the committed end.
    FailedCommit,
    /// The process dies: unsynced bytes may be lost, kept, or half-written (torn), and
    /// the log is reopened at the committed end.
    Crash { keep_tail: u8, garbage: Option<u8> },
    /// Read a committed entry (by its index into the committed ones, modulo their number).
    Read(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..=200).prop_map(Op::Append),
        2 => Just(Op::Commit),
        1 => Just(Op::FailedCommit),
        1 => (any::<u8>(), any::<Option<u8>>()).prop_map(|(keep_tail, garbage)| Op::Crash { keep_tail, garbage }),
        3 => any::<usize>().prop_map(Op::Read),
    ]
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

/// What a crash leaves of the segment files: everything up to the committed end, and
/// of each file's unsynced rest a prefix of `keep_tail`/255, optionally scribbled on at
/// the place `garbage`/255 of that prefix.
fn crash_files(dir: &Path, committed: LogEnd, keep_tail: u8, garbage: Option<u8>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let n: u32 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        let len = f.metadata().unwrap().len();
        let floor = match n.cmp(&committed.at.segment) {
            std::cmp::Ordering::Less => len,
            std::cmp::Ordering::Equal => u64::from(committed.at.offset),
            std::cmp::Ordering::Greater => 0,
        };
        let keep = floor + (len - floor) * u64::from(keep_tail) / 255;
        f.set_len(keep).unwrap();
        if let Some(g) = garbage.filter(|_| keep > floor) {
            let at = floor + (keep - floor - 1) * u64::from(g) / 255;
            let n = (keep - at).min(7) as usize;
            f.write_all_at(&[0xa5; 7][..n], at).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_log_holds_exactly_what_was_committed_through_crashes(ops in prop::collection::vec(op(), 1..120)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = SegmentLog::open(dir.path(), SHAPE, None).unwrap();
        // The model: committed entries with their locations, and the pending ones.
        let mut committed: Vec<(xinlian_store::segments::Location, Vec<u8>)> = Vec::new();
        let mut pending: Vec<(xinlian_store::segments::Location, Vec<u8>)> = Vec::new();
        let mut committed_end = LogEnd::empty(0);
        for op in ops {
            match op {
                Op::Append(len) => {
                    let seq = (committed.len() + pending.len()) as u64;
                    let p = payload(seq, len);
                    let at = log.append(seq, &p).unwrap();
                    pending.push((at, p));
                }
                Op::Commit => {
                    let end = log.sync().unwrap();
                    committed.append(&mut pending);
                    prop_assert_eq!(end.next_seq, committed.len() as u64);
                    committed_end = end;
                }
                Op::FailedCommit => {
                    log.rewind(committed_end).unwrap();
                    pending.clear();
                }
                Op::Crash { keep_tail, garbage } => {
                    drop(log);
                    crash_files(dir.path(), committed_end, keep_tail, garbage);
                    log = SegmentLog::open(dir.path(), SHAPE, Some(committed_end)).unwrap();
                    pending.clear();
                }
                Op::Read(i) => {
                    if !committed.is_empty() {
                        let i = i % committed.len();
                        let (at, p) = &committed[i];
                        prop_assert_eq!(&log.read(i as u64, *at).unwrap(), p);
                    }
                }
            }
            prop_assert_eq!(log.end().next_seq, (committed.len() + pending.len()) as u64);
        }
        // A scan from the start sees the committed entries and then the pending ones.
        let mut seen = Vec::new();
        log.scan(|seq, at, p| { seen.push((seq, at, p.to_vec())); Ok(()) }).unwrap();
        let expected: Vec<_> = committed.iter().chain(&pending).enumerate()
            .map(|(i, (at, p))| (i as u64, *at, p.clone())).collect();
        prop_assert_eq!(seen, expected);
    }
}

fn filled(dir: &Path, n: u64) -> (SegmentLog, Vec<xinlian_store::segments::Location>, LogEnd) {
    let log = SegmentLog::open(dir, SHAPE, None).unwrap();
    let at = (0..n)
        .map(|i| log.append(i, &payload(i, 100)).unwrap())
        .collect();
    let end = log.sync().unwrap();
    (log, at, end)
}

#[test]
fn a_flipped_byte_in_an_entry_is_refused_with_its_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (log, at, _) = filled(dir.path(), 10);
    let victim = at[5];
    let file = dir.path().join(format!("{:08}.seg", victim.segment));
    let f = OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all_at(&[0x5a], u64::from(victim.offset) + 8 + 40)
        .unwrap();
    match log.read(5, victim) {
        Err(SegmentError::Corrupt {
            file: f,
            offset,
            what,
        }) => {
            assert_eq!(f, file);
            assert_eq!(offset, u64::from(victim.offset));
            assert!(what.contains("checksum"), "{what}");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // Its neighbours still read, and the same entry asked for under another number is
    // refused too (the number is under the checksum).
    assert_eq!(log.read(4, at[4]).unwrap(), payload(4, 100));
    assert!(matches!(
        log.read(3, at[4]),
        Err(SegmentError::Corrupt { .. })
    ));
    // A scan stops at the damage.
    let err = log.scan(|_, _, _| Ok(())).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

/// A repair writes an entry back exactly where it was and nowhere else: into the space
/// between it and the next entry (across a segment's end too), never past the log's
/// end, and the copy must fill that space exactly.
#[test]
fn a_damaged_entry_is_rewritten_in_its_place_only() {
    let dir = tempfile::tempdir().unwrap();
    let (log, at, end) = filled(dir.path(), 10);
    // Entries of 108 bytes in segments of 512: four per segment.
    assert_eq!((at[3].segment, at[4].segment), (0, 1));
    for victim in [2usize, 3, 9] {
        let file = dir.path().join(format!("{:08}.seg", at[victim].segment));
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[0x5a], u64::from(at[victim].offset) + 8 + 7)
            .unwrap();
        assert!(log.read(victim as u64, at[victim]).is_err());
        let next = at.get(victim + 1).copied().unwrap_or(end.at);
        // A copy of another length does not fit, and changes nothing.
        for len in [99, 101] {
            let err = log
                .rewrite(
                    victim as u64,
                    at[victim],
                    next,
                    &payload(victim as u64, len),
                )
                .unwrap_err();
            assert!(err.to_string().contains("does not fill its place"), "{err}");
            assert!(log.read(victim as u64, at[victim]).is_err());
        }
        log.rewrite(
            victim as u64,
            at[victim],
            next,
            &payload(victim as u64, 100),
        )
        .unwrap();
    }
    for (i, a) in at.iter().enumerate() {
        assert_eq!(log.read(i as u64, *a).unwrap(), payload(i as u64, 100));
    }
    // Nothing past the end: the "next" of the last entry cannot be beyond it.
    let past = xinlian_store::segments::Location {
        segment: end.at.segment,
        offset: end.at.offset + 108,
    };
    assert!(log.rewrite(10, end.at, past, &payload(10, 100)).is_err());
    assert_eq!(log.end(), end);
}

#[test]
fn a_truncated_segment_and_a_missing_segment_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, end) = filled(dir.path(), 20);
    drop(log);
    assert!(end.at.segment >= 3, "the entries cross segments");
    let last = dir.path().join(format!("{:08}.seg", end.at.segment));
    let f = OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(u64::from(end.at.offset) - 1).unwrap();
    match SegmentLog::open(dir.path(), SHAPE, Some(end)) {
        Err(SegmentError::Truncated {
            file,
            len,
            committed,
        }) => {
            assert_eq!(file, last);
            assert_eq!(len + 1, committed);
        }
        other => panic!("expected a truncation error, got {:?}", other.err()),
    }
    let middle = dir.path().join("00000001.seg");
    std::fs::remove_file(&middle).unwrap();
    f.set_len(u64::from(end.at.offset)).unwrap();
    match SegmentLog::open(dir.path(), SHAPE, Some(end)) {
        Err(SegmentError::Missing { file, .. }) => assert_eq!(file, middle),
        other => panic!("expected a missing segment, got {:?}", other.err()),
    }
}

#[test]
fn a_shortened_segment_before_the_last_is_refused_at_open_by_the_next_ones_header() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, end) = filled(dir.path(), 20);
    drop(log);
    assert!(end.at.segment >= 2);
    let middle = dir.path().join("00000001.seg");
    let f = OpenOptions::new().write(true).open(&middle).unwrap();
    let len = f.metadata().unwrap().len();
    // Cut exactly one entry off, so that the rest still parses.
    f.set_len(len - 108).unwrap();
    match SegmentLog::open(dir.path(), SHAPE, Some(end)) {
        Err(SegmentError::Truncated {
            file,
            len: got,
            committed,
        }) => {
            assert_eq!(file, middle);
            assert_eq!((got, committed), (len - 108, len));
        }
        other => panic!("expected a truncation error, got {:?}", other.err()),
    }
    // Nothing was cut or removed by the refused open.
    f.set_len(len).unwrap();
    assert!(SegmentLog::open(dir.path(), SHAPE, Some(end)).is_ok());
}

#[test]
fn a_committed_end_no_log_can_have_is_refused_before_anything_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, end) = filled(dir.path(), 20);
    drop(log);
    let before: Vec<u64> = (0..=end.at.segment)
        .map(|n| {
            std::fs::metadata(dir.path().join(format!("{n:08}.seg")))
                .unwrap()
                .len()
        })
        .collect();
    for bad in [
        LogEnd {
            at: xinlian_store::segments::Location {
                offset: 3,
                ..end.at
            },
            ..end
        },
        LogEnd {
            at: xinlian_store::segments::Location {
                offset: SHAPE.segment_bytes + 1,
                ..end.at
            },
            ..end
        },
        LogEnd { next_seq: 0, ..end },
        LogEnd { next_seq: 2, ..end },
    ] {
        assert!(
            SegmentLog::open(dir.path(), SHAPE, Some(bad)).is_err(),
            "{bad:?}"
        );
    }
    let after: Vec<u64> = (0..=end.at.segment)
        .map(|n| {
            std::fs::metadata(dir.path().join(format!("{n:08}.seg")))
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(before, after);
}

#[test]
fn a_damaged_segment_header_or_a_log_with_no_commit_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, end) = filled(dir.path(), 20);
    drop(log);
    let first = dir.path().join("00000000.seg");
    let f = OpenOptions::new().write(true).open(&first).unwrap();
    f.write_all_at(&[0], 9).unwrap();
    let err = SegmentLog::open(dir.path(), SHAPE, Some(end))
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("00000000.seg at offset 0: bad segment header"),
        "{err}"
    );
    // Segments a store has no record of (its key-value store lost them) are not
    // silently reused or removed.
    let err = SegmentLog::open(dir.path(), SHAPE, None)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("none were committed"), "{err}");
}

#[test]
fn a_location_from_a_damaged_index_cannot_reach_past_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let (log, at, end) = filled(dir.path(), 3);
    let beyond = xinlian_store::segments::Location {
        segment: end.at.segment,
        offset: end.at.offset,
    };
    assert!(matches!(
        log.read(3, beyond),
        Err(SegmentError::Corrupt { .. })
    ));
    let nowhere = xinlian_store::segments::Location {
        segment: 99,
        offset: SEGMENT_HEADER_BYTES,
    };
    assert!(matches!(
        log.read(0, nowhere),
        Err(SegmentError::Corrupt { .. })
    ));
    let inside = xinlian_store::segments::Location {
        segment: at[1].segment,
        offset: at[1].offset + 3,
    };
    assert!(matches!(
        log.read(1, inside),
        Err(SegmentError::Corrupt { .. })
    ));
}

#[test]
fn a_fixed_log_places_entries_by_number_across_segments_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = FixedLog::open(dir.path(), "nodes", 32, 256, None).unwrap();
    for i in 0..50u64 {
        log.append(i, &[i as u8; 32]).unwrap();
    }
    assert_eq!(log.sync().unwrap(), 50);
    for i in 40..45u64 {
        log.append(i + 10, &[0; 32]).unwrap();
    }
    drop(log);
    let log = FixedLog::open(dir.path(), "nodes", 32, 256, Some(50)).unwrap();
    assert_eq!(log.len(), 50, "the uncommitted tail is cut");
    for i in 0..50u64 {
        assert_eq!(log.read(i).unwrap(), vec![i as u8; 32]);
    }
    assert!(log.read(50).is_err());
    assert!(log.append(7, &[0; 32]).is_err(), "out of order");
    assert!(log.append(50, &[0; 31]).is_err(), "wrong width");
    log.rewind(10).unwrap();
    log.append(10, &[9; 32]).unwrap();
    assert_eq!(log.read(10).unwrap(), vec![9; 32]);
}
