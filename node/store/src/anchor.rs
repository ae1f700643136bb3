//! The anchor: what this node has acknowledged and signed, kept apart from the
//! key-value store so that damage to it cannot erase them (docs/storage.md § Recovery).
//!
//! A small file of two slots a page apart (so that no one sector or page holds both),
//! written in turn (as redb flips its commit slots):
//! each slot holds a counter, the chain, the height of the last block acknowledged and
//! its hash, the highest height at which this node made a durable signature, and the
//! number and digest of the write-ahead-log entry that signature's flush made durable,
//! under a CRC. A torn write spoils at most the slot being written, and the other one still
//! holds the previous anchor; the valid slot with the higher counter wins.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xinlian_genesis::Hash32;

/// The first layout: no write-ahead-log entry. Still read, never written.
const MAGIC_V1: [u8; 8] = *b"xinlanc1";
/// v1: magic 8 ‖ counter 8 ‖ chain 32 ‖ acknowledged height 8 ‖ its hash 32 ‖ signed height 8 ‖ CRC 4.
const SLOT_V1_BYTES: usize = 100;
const MAGIC: [u8; 8] = *b"xinlanc2";
/// v2: the v1 fields to the signed height ‖ entry number 8 (`u64::MAX`: none) ‖ its
/// digest 32 ‖ CRC 4.
const SLOT_BYTES: usize = 140;
/// Where slot 1 starts, and half the file.
const SLOT_STRIDE: usize = 4096;
const FILE_BYTES: u64 = 2 * SLOT_STRIDE as u64;

/// What the anchor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    pub chain: Hash32,
    /// The height of the last block this node acknowledged as stored (0: none).
    pub acknowledged: u64,
    /// That block's hash (the genesis tip's for height 0).
    pub acknowledged_hash: Hash32,
    /// The highest height at which this node wrote a signature of its own to its
    /// write-ahead log (0: none).
    pub signed: u64,
    /// The last entry of that height's write-ahead log made durable by a signature's
    /// flush: the log must still hold it, and every entry before it, at open. `None`
    /// in an anchor of the first layout (which kept only the height).
    pub last_signed: Option<SignedEntry>,
}

/// A write-ahead-log entry named by its number within its height and the SHA-256 of
/// its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedEntry {
    pub number: u32,
    pub digest: Hash32,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    #[error("{}: {source}", file.display())]
    Io { file: PathBuf, source: io::Error },
    #[error("{}: not a valid anchor: {what}", file.display())]
    Corrupt { file: PathBuf, what: String },
}

pub struct Anchor {
    path: PathBuf,
    file: File,
    counter: u64,
    marks: Marks,
}

fn encode(counter: u64, m: &Marks) -> [u8; SLOT_BYTES] {
    let mut s = [0u8; SLOT_BYTES];
    s[..8].copy_from_slice(&MAGIC);
    s[8..16].copy_from_slice(&counter.to_le_bytes());
    s[16..48].copy_from_slice(&m.chain.0);
    s[48..56].copy_from_slice(&m.acknowledged.to_le_bytes());
    s[56..88].copy_from_slice(&m.acknowledged_hash.0);
    s[88..96].copy_from_slice(&m.signed.to_le_bytes());
    let (number, digest) = match m.last_signed {
        Some(e) => (u64::from(e.number), e.digest),
        None => (u64::MAX, Hash32([0; 32])),
    };
    s[96..104].copy_from_slice(&number.to_le_bytes());
    s[104..136].copy_from_slice(&digest.0);
    let crc = crc32fast::hash(&s[..136]);
    s[136..].copy_from_slice(&crc.to_le_bytes());
    s
}

/// A slot of either layout, if its magic and CRC hold; an error if they hold and it
/// names what no anchor writes (a slot that checks out is never passed over silently,
/// which would fall back to the older one).
fn decode(s: &[u8; SLOT_BYTES]) -> Result<Option<(u64, Marks)>, String> {
    let u64_at = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let h32_at = |i: usize| Hash32(s[i..i + 32].try_into().expect("32 bytes"));
    let crc_at = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    let last_signed = if s[..8] == MAGIC && crc32fast::hash(&s[..136]) == crc_at(136) {
        match u64_at(96) {
            u64::MAX => None,
            n => Some(SignedEntry {
                number: u32::try_from(n)
                    .map_err(|_| format!("a slot names log entry {n}, beyond any entry"))?,
                digest: h32_at(104),
            }),
        }
    } else if s[..8] == MAGIC_V1
        && crc32fast::hash(&s[..SLOT_V1_BYTES - 4]) == crc_at(SLOT_V1_BYTES - 4)
    {
        None
    } else {
        return Ok(None);
    };
    Ok(Some((
        u64_at(8),
        Marks {
            chain: h32_at(16),
            acknowledged: u64_at(48),
            acknowledged_hash: h32_at(56),
            signed: u64_at(88),
            last_signed,
        },
    )))
}

impl Anchor {
    /// Whether an anchor file exists at `path`.
    pub fn exists(path: &Path) -> bool {
        path.exists()
    }

    /// Creates the anchor of a new store, durable on return: written whole beside its
    /// place, synced, renamed into place and the folder synced, so that a crash leaves
    /// either no anchor or a valid one.
    pub fn create(path: &Path, marks: Marks) -> Result<Anchor, AnchorError> {
        let io = |file: &Path| {
            let file = file.to_path_buf();
            move |source| AnchorError::Io { file, source }
        };
        let tmp = path.with_extension("new");
        let mut image = vec![0u8; FILE_BYTES as usize];
        image[..SLOT_BYTES].copy_from_slice(&encode(0, &marks));
        image[SLOT_STRIDE..SLOT_STRIDE + SLOT_BYTES].copy_from_slice(&encode(0, &marks));
        {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all_at(&image, 0)
                .and_then(|()| f.sync_all())
                .map_err(io(&tmp))?;
        }
        if path.exists() {
            return Err(AnchorError::Io {
                file: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "an anchor exists"),
            });
        }
        std::fs::rename(&tmp, path).map_err(io(path))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Self::open(path)
    }

    /// Opens an existing anchor: the valid slot with the higher counter.
    pub fn open(path: &Path) -> Result<Anchor, AnchorError> {
        let io = |source| AnchorError::Io {
            file: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len != FILE_BYTES {
            return Err(AnchorError::Corrupt {
                file: path.to_path_buf(),
                what: format!("{len} bytes, not {FILE_BYTES}"),
            });
        }
        let mut slot0 = [0u8; SLOT_BYTES];
        let mut slot1 = [0u8; SLOT_BYTES];
        file.read_exact_at(&mut slot0, 0).map_err(io)?;
        file.read_exact_at(&mut slot1, SLOT_STRIDE as u64)
            .map_err(io)?;
        let corrupt = |what: String| AnchorError::Corrupt {
            file: path.to_path_buf(),
            what,
        };
        let mut slots = Vec::new();
        for slot in [&slot0, &slot1] {
            slots.extend(decode(slot).map_err(corrupt)?);
        }
        let best = slots
            .into_iter()
            .max_by_key(|(counter, _)| *counter)
            .ok_or_else(|| corrupt("neither slot holds one (both checksums fail)".into()))?;
        Ok(Anchor {
            path: path.to_path_buf(),
            file,
            counter: best.0,
            marks: best.1,
        })
    }

    pub fn marks(&self) -> Marks {
        self.marks
    }

    /// Replaces the marks, durable on return. The slot not holding the current marks
    /// is overwritten, so a crash meanwhile leaves the current ones readable.
    pub fn set(&mut self, marks: Marks) -> Result<(), AnchorError> {
        if marks == self.marks {
            return Ok(());
        }
        let counter = self.counter + 1;
        let slot = (counter % 2) as usize * SLOT_STRIDE;
        self.file
            .write_all_at(&encode(counter, &marks), slot as u64)
            .and_then(|()| self.file.sync_data())
            .map_err(|source| AnchorError::Io {
                file: self.path.clone(),
                source,
            })?;
        self.counter = counter;
        self.marks = marks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(h: u64) -> Marks {
        Marks {
            chain: Hash32([7; 32]),
            acknowledged: h,
            acknowledged_hash: Hash32([h as u8; 32]),
            signed: h + 1,
            last_signed: Some(SignedEntry {
                number: h as u32,
                digest: Hash32([h as u8 ^ 0x5a; 32]),
            }),
        }
    }

    #[test]
    fn the_latest_marks_survive_reopening_and_a_torn_slot_falls_back_to_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor");
        let mut a = Anchor::create(&path, marks(0)).unwrap();
        for h in 1..=5 {
            a.set(marks(h)).unwrap();
        }
        assert_eq!(Anchor::open(&path).unwrap().marks(), marks(5));
        // Counter 5 sits in slot 1; tear it: slot 0 (counter 4) is what remains.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xff; 10], SLOT_STRIDE as u64 + 40)
            .unwrap();
        assert_eq!(Anchor::open(&path).unwrap().marks(), marks(4));
        // Both torn: an error naming the file, not a fresh anchor.
        f.write_all_at(&[0xff; 10], 40).unwrap();
        let err = Anchor::open(&path).err().expect("refused").to_string();
        assert!(
            err.contains("anchor") && err.contains("neither slot"),
            "{err}"
        );
    }

    #[test]
    fn an_anchor_of_the_wrong_size_is_refused_and_create_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor");
        Anchor::create(&path, marks(3)).unwrap();
        assert!(Anchor::create(&path, marks(0)).is_err(), "create_new");
        assert_eq!(Anchor::open(&path).unwrap().marks(), marks(3));
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(150)
            .unwrap();
        let err = Anchor::open(&path).err().expect("refused").to_string();
        assert!(err.contains("150 bytes"), "{err}");
        // A half-written anchor beside its place (a crash in `create`) is not an anchor.
        let other = dir.path().join("other");
        std::fs::write(other.with_extension("new"), [1, 2, 3]).unwrap();
        assert!(!Anchor::exists(&other));
        Anchor::create(&other, marks(0)).unwrap();
        assert_eq!(Anchor::open(&other).unwrap().marks(), marks(0));
    }

    /// An anchor written by the first layout (no write-ahead-log entry) still opens,
    /// as marks with no last signed entry, and the next write replaces it in full.
    #[test]
    fn an_anchor_of_the_first_layout_opens_and_is_rewritten_in_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor");
        let old = marks(4);
        let mut slot = [0u8; SLOT_V1_BYTES];
        slot[..8].copy_from_slice(&MAGIC_V1);
        slot[8..16].copy_from_slice(&9u64.to_le_bytes());
        slot[16..48].copy_from_slice(&old.chain.0);
        slot[48..56].copy_from_slice(&old.acknowledged.to_le_bytes());
        slot[56..88].copy_from_slice(&old.acknowledged_hash.0);
        slot[88..96].copy_from_slice(&old.signed.to_le_bytes());
        let crc = crc32fast::hash(&slot[..96]);
        slot[96..].copy_from_slice(&crc.to_le_bytes());
        let mut image = vec![0u8; FILE_BYTES as usize];
        // Counter 9 sits in slot 1, so the next write (10) goes to slot 0.
        image[SLOT_STRIDE..SLOT_STRIDE + SLOT_V1_BYTES].copy_from_slice(&slot);
        std::fs::write(&path, &image).unwrap();
        let mut a = Anchor::open(&path).unwrap();
        let read = Marks {
            last_signed: None,
            ..old
        };
        assert_eq!(a.marks(), read);
        a.set(marks(5)).unwrap();
        assert_eq!(Anchor::open(&path).unwrap().marks(), marks(5));
        // A flipped byte of the new entry's digest spoils that slot: the old one is read.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[0xee], 110).unwrap();
        assert_eq!(Anchor::open(&path).unwrap().marks(), read);
    }

    /// A slot whose checksum holds but that names a log entry no anchor writes is
    /// refused, not passed over for the older slot.
    #[test]
    fn a_slot_that_checks_out_but_names_an_impossible_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor");
        let mut a = Anchor::create(&path, marks(0)).unwrap();
        a.set(marks(1)).unwrap();
        // Counter 1 sits in slot 1: give it entry 2^33, with its checksum made again.
        let mut slot = encode(1, &marks(1));
        slot[96..104].copy_from_slice(&(1u64 << 33).to_le_bytes());
        let crc = crc32fast::hash(&slot[..136]);
        slot[136..].copy_from_slice(&crc.to_le_bytes());
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&slot, SLOT_STRIDE as u64).unwrap();
        let err = Anchor::open(&path).err().expect("refused").to_string();
        assert!(err.contains("8589934592"), "{err}");
    }
}
