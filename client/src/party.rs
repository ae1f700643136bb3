//! A party to a custody event: an enterprise by its USCC, or — in a trace domain whose
//! policy hides counterparties (`policy.trace`, docs/privacy.md § Trace events) — by the
//! custody key its registrar bound for that domain (`bind_custody_key`), a pseudonym
//! that names the same enterprise in every event of the domain and no enterprise to a
//! reader not entitled to the binding's sealed USCC.
//!
//! People read a party as a string: the USCC, or `custody:` and the key in hex (a USCC
//! never holds a colon). The canonical binary form is a two-variant enum.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xinlian_genesis::PublicKey;

use crate::ids::Uscc;

/// The prefix of a custody key's readable form.
pub const CUSTODY_PREFIX: &str = "custody:";

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    Enterprise(Uscc),
    Custody(PublicKey),
}

/// The binary form, as derived.
#[derive(Serialize, Deserialize)]
enum Repr {
    Enterprise(Uscc),
    Custody(PublicKey),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartyError {
    #[error("'{0}' is neither a USCC nor custody:<64 hex digits>")]
    Form(String),
}

impl Party {
    /// The enterprise, where the party is named by its USCC.
    pub fn uscc(&self) -> Option<&Uscc> {
        match self {
            Party::Enterprise(u) => Some(u),
            Party::Custody(_) => None,
        }
    }

    /// The bytes that name the party in state keys: the USCC's, as before custody keys
    /// existed, or the readable custody form's.
    pub fn key_bytes(&self) -> Vec<u8> {
        match self {
            Party::Enterprise(u) => u.as_str().as_bytes().to_vec(),
            Party::Custody(_) => self.to_string().into_bytes(),
        }
    }

    /// The party named by [`Party::key_bytes`].
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Party, PartyError> {
        let s = std::str::from_utf8(bytes)
            .map_err(|_| PartyError::Form(String::from_utf8_lossy(bytes).into_owned()))?;
        s.parse()
    }
}

impl From<Uscc> for Party {
    fn from(u: Uscc) -> Party {
        Party::Enterprise(u)
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Enterprise(u) => f.write_str(u.as_str()),
            Party::Custody(k) => write!(f, "{CUSTODY_PREFIX}{k}"),
        }
    }
}

impl std::fmt::Debug for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Party({self})")
    }
}

impl std::str::FromStr for Party {
    type Err = PartyError;
    fn from_str(s: &str) -> Result<Party, PartyError> {
        match s.strip_prefix(CUSTODY_PREFIX) {
            Some(hex) if hex.len() == 64 => PublicKey::from_hex(hex)
                .map(Party::Custody)
                .map_err(|_| PartyError::Form(s.into())),
            Some(_) => Err(PartyError::Form(s.into())),
            None if s.contains(':') => Err(PartyError::Form(s.into())),
            // The USCC's own checks (format, check character) are the record checks'.
            None => Ok(Party::Enterprise(Uscc(s.into()))),
        }
    }
}

impl Serialize for Party {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return s.collect_str(self);
        }
        match self {
            Party::Enterprise(u) => Repr::Enterprise(u.clone()),
            Party::Custody(k) => Repr::Custody(*k),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Party {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Party, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            return s.parse().map_err(serde::de::Error::custom);
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Enterprise(u) => Party::Enterprise(u),
            Repr::Custody(k) => Party::Custody(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_party_reads_back_from_its_string_its_json_its_bytes_and_its_state_key() {
        let k = PublicKey([7; 32]);
        for p in [
            Party::Enterprise(Uscc("91310117MA1G0A1B2X".into())),
            Party::Custody(k),
        ] {
            assert_eq!(p.to_string().parse::<Party>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{p}\""));
            assert_eq!(serde_json::from_str::<Party>(&json).unwrap(), p);
            let bytes = postcard::to_allocvec(&p).unwrap();
            assert_eq!(postcard::from_bytes::<Party>(&bytes).unwrap(), p);
            assert_eq!(Party::from_key_bytes(&p.key_bytes()).unwrap(), p);
        }
        assert_eq!(
            Party::Enterprise(Uscc("91310117MA1G0A1B2X".into())).key_bytes(),
            b"91310117MA1G0A1B2X",
            "an enterprise's state keys are as before custody keys"
        );
    }

    #[test]
    fn a_malformed_custody_key_or_a_stray_colon_is_refused() {
        for bad in [
            "custody:",
            "custody:zz",
            &format!("custody:{}", "g".repeat(64)),
            "a:b",
        ] {
            assert!(bad.parse::<Party>().is_err(), "{bad}");
        }
    }
}
