//! Fixed-size byte strings (hashes, public keys, signatures) that read as hex to people
//! and as raw fixed-length bytes in the canonical binary form.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use std::fmt;

/// Serialize `N` bytes: lowercase hex in human-readable formats (JSON, TOML), a fixed
/// tuple of bytes (no length prefix) in binary ones, so postcard spends exactly `N` bytes.
pub fn serialize<S: Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&hex::encode(bytes))
    } else {
        let mut t = s.serialize_tuple(N)?;
        for b in bytes {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
    struct HexOrTuple<const N: usize>;
    impl<'de, const N: usize> Visitor<'de> for HexOrTuple<N> {
        type Value = [u8; N];
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "{N} bytes as {} hex digits", 2 * N)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut out = [0u8; N];
            hex::decode_to_slice(v, &mut out)
                .map_err(|e| E::custom(format!("expected {} hex digits: {e}", 2 * N)))?;
            Ok(out)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = [0u8; N];
            for (i, slot) in out.iter_mut().enumerate() {
                *slot = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(i, &self))?;
            }
            Ok(out)
        }
    }
    if d.is_human_readable() {
        d.deserialize_str(HexOrTuple::<N>)
    } else {
        d.deserialize_tuple(N, HexOrTuple::<N>)
    }
}

/// Declares a newtype over `[u8; N]` with hex display and the dual serde form above.
#[macro_export]
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $n:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            pub const LEN: usize = $n;
            pub fn to_hex(&self) -> String {
                ::hex::encode(self.0)
            }
            pub fn from_hex(s: &str) -> Result<Self, ::hex::FromHexError> {
                let mut out = [0u8; $n];
                ::hex::decode_to_slice(s, &mut out)?;
                Ok(Self(out))
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::bytes::serialize(&self.0, s)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::bytes::deserialize(d).map(Self)
            }
        }
    };
}

fixed_bytes!(
    /// A SHA-256 digest.
    Hash32,
    32
);
fixed_bytes!(
    /// An ed25519 public key in its 32-byte encoding.
    PublicKey,
    32
);

impl Hash32 {
    pub const ZERO: Hash32 = Hash32([0; 32]);
}
