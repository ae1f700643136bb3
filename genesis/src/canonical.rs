//! The one binary encoding of every signed or hashed value: postcard 1.x, accepted only
//! when re-encoding the decoded value gives back exactly the input bytes. So each value
//! has one encoding, and therefore one hash.

use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};

use crate::bytes::Hash32;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CanonicalError {
    #[error("{len} bytes exceed the bound of {max} bytes")]
    Oversize { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    #[error("non-canonical encoding: re-encoding gives different bytes")]
    NonCanonical,
}

/// Encodes a value. Our types contain no floats, maps with unstable order or other
/// values postcard cannot encode, so failure is a programming error.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("canonical types always encode")
}

/// Decodes `bytes` (at most `max` of them) and insists they are the canonical encoding.
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, CanonicalError> {
    if bytes.len() > max {
        return Err(CanonicalError::Oversize {
            len: bytes.len(),
            max,
        });
    }
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| CanonicalError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CanonicalError::Trailing(rest.len()));
    }
    // Postcard accepts over-long varints and similar; a second encoding of one value
    // would give a second hash, so only the shortest form is admitted.
    if encode(&value) != bytes {
        return Err(CanonicalError::NonCanonical);
    }
    Ok(value)
}

/// SHA-256 over a domain tag and the canonical encoding, so hashes of different kinds
/// of values can never collide by construction.
pub fn tagged_hash<T: Serialize>(tag: &str, value: &T) -> Hash32 {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update([0u8]);
    h.update(encode(value));
    Hash32(h.finalize().into())
}

pub fn sha256(data: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(data).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_varint_is_rejected() {
        // 1 as a one-byte varint is canonical; 0x81 0x00 also decodes to 1 in postcard.
        assert_eq!(decode::<u32>(&[1], 16), Ok(1));
        assert_eq!(
            decode::<u32>(&[0x81, 0x00], 16),
            Err(CanonicalError::NonCanonical)
        );
    }

    #[test]
    fn trailing_and_oversize_are_rejected() {
        assert_eq!(decode::<u32>(&[1, 2], 16), Err(CanonicalError::Trailing(1)));
        assert_eq!(
            decode::<u32>(&[1, 2], 1),
            Err(CanonicalError::Oversize { len: 2, max: 1 })
        );
        assert!(matches!(
            decode::<bool>(&[2], 16),
            Err(CanonicalError::Malformed(_))
        ));
    }
}
