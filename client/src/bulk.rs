//! The binary body of a bulk submission (`POST /v1/records/bulk`): records one after
//! another, each as its length (a postcard varint) and then its canonical bytes. The
//! JSON body is simply a list of signed records.
//!
//! Decoding is bounded before anything is allocated for a record: at most
//! `records_max` records of at most `record_bytes_max` bytes each, every one in its
//! canonical encoding; anything else refuses the whole body, naming the record by its
//! index (from 0).

use crate::record::{DecodeError, EncodedRecord};

/// The most records one request carries, to `records/bulk` or `records/check`.
pub const RECORDS_PER_REQUEST_MAX: usize = 1_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BulkError {
    #[error("no records: send 1 to {max}")]
    Empty { max: usize },
    #[error("more than {max} records")]
    TooMany { max: usize },
    #[error("the record at index {index}: its length is cut short or not a varint")]
    Length { index: usize },
    #[error("the record at index {index} is {len} bytes, over the bound of {max} bytes")]
    Oversize {
        index: usize,
        len: usize,
        max: usize,
    },
    #[error("the record at index {index}: the body ends {missing} bytes short of its length")]
    Truncated { index: usize, missing: usize },
    #[error("the record at index {index}: {source}")]
    Record { index: usize, source: DecodeError },
}

/// The binary body for `records`, in order.
pub fn encode<'a>(records: impl IntoIterator<Item = &'a EncodedRecord>) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let len = u64::try_from(r.bytes().len()).unwrap_or(u64::MAX);
        // A u64 always encodes; the buffer is large enough for any varint.
        let mut buf = [0u8; 10];
        if let Ok(varint) = postcard::to_slice(&len, &mut buf) {
            out.extend_from_slice(varint);
        }
        out.extend_from_slice(r.bytes());
    }
    out
}

/// The records of a binary body, each checked canonical and within its bound.
pub fn decode(
    mut body: &[u8],
    records_max: usize,
    record_bytes_max: usize,
) -> Result<Vec<EncodedRecord>, BulkError> {
    let mut records = Vec::new();
    while !body.is_empty() {
        let index = records.len();
        if index == records_max {
            return Err(BulkError::TooMany { max: records_max });
        }
        let (len, rest) =
            postcard::take_from_bytes::<u64>(body).map_err(|_| BulkError::Length { index })?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > record_bytes_max {
            return Err(BulkError::Oversize {
                index,
                len,
                max: record_bytes_max,
            });
        }
        if rest.len() < len {
            return Err(BulkError::Truncated {
                index,
                missing: len - rest.len(),
            });
        }
        let (bytes, rest) = rest.split_at(len);
        let record = EncodedRecord::decode(bytes, record_bytes_max)
            .map_err(|source| BulkError::Record { index, source })?;
        records.push(record);
        body = rest;
    }
    if records.is_empty() {
        return Err(BulkError::Empty { max: records_max });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Uscc;
    use crate::record::{Body, Envelope, ListAction, ListKind, ListMeasure};
    use crate::when::Date;
    use xinlian_genesis::Hash32;
    use xinlian_genesis::keys::{SigningKey, public_key};

    fn records(n: u64) -> Vec<EncodedRecord> {
        let key = SigningKey::from_bytes(&[3; 32]);
        (0..n)
            .map(|nonce| {
                let env = Envelope {
                    chain: Hash32([1; 32]),
                    signer: public_key(&key),
                    nonce,
                    body: Body::from(ListMeasure {
                        subject: Uscc("91310117MA1G0A1B2P".into()),
                        list: ListKind::Reward,
                        action: ListAction::Add,
                        domain: "market".into(),
                        basis: vec![],
                        reason: "r".repeat(nonce as usize * 50),
                        date: Date::parse("2026-01-01").expect("a date"),
                    }),
                };
                EncodedRecord::new(env.sign(&key))
            })
            .collect()
    }

    #[test]
    fn records_come_back_in_order_with_their_ids() {
        // Lengths past 127 take a two-byte varint.
        let sent = records(5);
        assert!(sent.iter().any(|r| r.bytes().len() > 127));
        let back = decode(&encode(&sent), 5, 1 << 14).expect("decodes");
        assert_eq!(back, sent);
    }

    #[test]
    fn a_bad_body_is_refused_naming_the_record() {
        let sent = records(3);
        let body = encode(&sent);
        assert_eq!(decode(&[], 10, 1 << 14), Err(BulkError::Empty { max: 10 }));
        assert_eq!(
            decode(&body, 2, 1 << 14),
            Err(BulkError::TooMany { max: 2 })
        );
        let first = sent[0].bytes().len();
        assert_eq!(
            decode(&body, 10, first - 1),
            Err(BulkError::Oversize {
                index: 0,
                len: first,
                max: first - 1
            })
        );
        assert_eq!(
            decode(&body[..body.len() - 1], 10, 1 << 14),
            Err(BulkError::Truncated {
                index: 2,
                missing: 1
            })
        );
        // A varint cut short, and one that never ends.
        let mut cut = body.clone();
        cut.push(0x80);
        assert_eq!(
            decode(&cut, 10, 1 << 14),
            Err(BulkError::Length { index: 3 })
        );
        assert_eq!(
            decode(&[0xff; 11], 10, 1 << 14),
            Err(BulkError::Length { index: 0 })
        );
        // A huge declared length allocates nothing: refused by the bound.
        let mut huge = vec![0xff; 9];
        huge.push(0x01);
        assert!(matches!(
            decode(&huge, 10, 1 << 14),
            Err(BulkError::Oversize { index: 0, .. })
        ));
        // Bytes that are no canonical record.
        let mut junk = encode(&sent[..1]);
        junk.extend_from_slice(&[4, 1, 2, 3, 4]);
        assert!(matches!(
            decode(&junk, 10, 1 << 14),
            Err(BulkError::Record { index: 1, .. })
        ));
    }
}
