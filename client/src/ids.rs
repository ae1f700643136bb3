//! Identifiers with published check rules: the Unified Social Credit Code (GB
//! 32100-2015), GTIN (GS1 mod-10), and the format of the drug traceability code; and
//! the form of a batch id, for names that arrive outside a record (a URL's path).

use serde::{Deserialize, Serialize};

const USCC_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("'{0}' is not 18 characters long")]
    UsccLength(String),
    #[error("'{code}' has '{ch}' at position {pos}, outside the USCC alphabet (no I, O, S, V, Z)")]
    UsccCharacter { code: String, ch: char, pos: usize },
    #[error("'{code}' fails the GB 32100 check: last character should be '{expected}'")]
    UsccCheck { code: String, expected: char },
    #[error("GTIN '{0}' must be 8, 12, 13 or 14 digits")]
    GtinFormat(String),
    #[error("GTIN '{code}' fails the mod-10 check: last digit should be {expected}")]
    GtinCheck { code: String, expected: u32 },
    #[error("drug traceability code '{0}' must be 20 digits")]
    DrugCodeFormat(String),
    /// Shown escaped (`{0:?}`): the name may hold control characters.
    #[error(
        "batch id {0:?} must be 1 to {max} printable ASCII characters without spaces",
        max = crate::checks::ID_BYTES_MAX
    )]
    BatchId(String),
}

/// A Unified Social Credit Code. The type holds any 18-character code in the right
/// alphabet; whether its check character is right is asked separately, because a few
/// genuine early codes fail it and a registrar may bind them with a recorded override.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uscc(pub String);

impl Uscc {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks length and alphabet (not the check character).
    pub fn check_format(&self) -> Result<(), IdError> {
        if self.0.len() != 18 || self.0.chars().count() != 18 {
            return Err(IdError::UsccLength(self.0.clone()));
        }
        for (pos, ch) in self.0.chars().enumerate() {
            if !ch.is_ascii() || !USCC_ALPHABET.contains(&(ch as u8)) {
                return Err(IdError::UsccCharacter {
                    code: self.0.clone(),
                    ch,
                    pos: pos + 1,
                });
            }
        }
        Ok(())
    }

    pub fn expected_check(&self) -> Result<char, IdError> {
        self.check_format()?;
        let sum: u32 = self
            .0
            .bytes()
            .take(17)
            .zip(USCC_WEIGHTS)
            .map(|(b, w)| uscc_value(b) * w)
            .sum();
        Ok(USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char)
    }

    pub fn check(&self) -> Result<(), IdError> {
        let expected = self.expected_check()?;
        if self.0.as_bytes()[17] as char != expected {
            return Err(IdError::UsccCheck {
                code: self.0.clone(),
                expected,
            });
        }
        Ok(())
    }

    /// Completes a 17-character payload with its check character.
    pub fn with_check(payload17: &str) -> Result<Uscc, IdError> {
        let u = Uscc(format!("{payload17}0"));
        let c = u.expected_check()?;
        Ok(Uscc(format!("{payload17}{c}")))
    }
}

fn uscc_value(b: u8) -> u32 {
    USCC_ALPHABET
        .iter()
        .position(|&c| c == b)
        .expect("alphabet checked first") as u32
}

impl std::fmt::Display for Uscc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// GS1 GTIN-8/12/13/14 check: weights 3,1,3,… from the right of the payload.
pub fn check_gtin(code: &str) -> Result<(), IdError> {
    if ![8, 12, 13, 14].contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::GtinFormat(code.to_string()));
    }
    let expected = gtin_check_digit(&code[..code.len() - 1]);
    if u32::from(code.as_bytes()[code.len() - 1] - b'0') != expected {
        return Err(IdError::GtinCheck {
            code: code.to_string(),
            expected,
        });
    }
    Ok(())
}

pub fn gtin_check_digit(payload: &str) -> u32 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10
}

/// No public check rule is known for drug traceability codes: format only.
pub fn check_drug_code(code: &str) -> Result<(), IdError> {
    if code.len() != 20 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IdError::DrugCodeFormat(code.to_string()));
    }
    Ok(())
}

/// A batch id as records may name one: 1 to `ID_BYTES_MAX` printable ASCII characters,
/// no spaces (the rule the stateless checks apply to every batch field). A name from
/// elsewhere — a URL's path, a provenance request's roots — is checked with this before
/// it is used as a key: a NUL or other control character could otherwise reach the
/// state's key layout, whose components it separates.
pub fn check_batch_id(name: &str) -> Result<(), IdError> {
    let ok = !name.is_empty()
        && name.len() <= crate::checks::ID_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        return Err(IdError::BatchId(name.chars().take(160).collect()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uscc_examples_from_the_domain_notes() {
        for ok in [
            "91350100M000100Y43",
            "91440300708461136T",
            "91110000600037341L",
            "91310110666007217T",
        ] {
            Uscc(ok.into())
                .check()
                .unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(
            Uscc("91310000MA1FL8TQ3X".into()).check(),
            Err(IdError::UsccCheck {
                code: "91310000MA1FL8TQ3X".into(),
                expected: '6'
            })
        );
        assert!(matches!(
            Uscc("91310000MA1FL8TQ3".into()).check(),
            Err(IdError::UsccLength(_))
        ));
        assert!(matches!(
            Uscc("91310000MA1FL8TQ3I".into()).check(),
            Err(IdError::UsccCharacter {
                ch: 'I',
                pos: 18,
                ..
            })
        ));
        assert!(Uscc("9131000０MA1FL8TQ3".into()).check().is_err());
        assert_eq!(
            Uscc::with_check("91310000MA1FL8TQ3").unwrap().as_str(),
            "91310000MA1FL8TQ36"
        );
    }

    #[test]
    fn gtin_check_digits() {
        check_gtin("4006381333931").unwrap(); // GS1's worked GTIN-13 example
        check_gtin("96385074").unwrap();
        check_gtin("00012345600012").unwrap();
        assert_eq!(
            check_gtin("4006381333932"),
            Err(IdError::GtinCheck {
                code: "4006381333932".into(),
                expected: 1
            })
        );
        assert!(matches!(
            check_gtin("400638133393"),
            Err(IdError::GtinCheck { .. })
        ));
        assert!(matches!(
            check_gtin("40063813339x1"),
            Err(IdError::GtinFormat(_))
        ));
        check_drug_code("81234560000000000001").unwrap();
        assert!(check_drug_code("8123456").is_err());
    }

    #[test]
    fn batch_ids_are_printable_ascii_and_a_nul_is_refused_by_name() {
        for ok in [
            "rice-2026-sj-001",
            "urn:epc:id:sscc:0614141.1234567890",
            &"x".repeat(crate::checks::ID_BYTES_MAX),
        ] {
            check_batch_id(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = check_batch_id("\0").unwrap_err();
        assert_eq!(e, IdError::BatchId("\0".into()));
        assert!(
            e.to_string()
                .starts_with(r#"batch id "\0" must be 1 to 128"#),
            "{e}"
        );
        for bad in [
            "",
            "a b",
            "rice\0",
            "a\nb",
            "米-1",
            &"x".repeat(crate::checks::ID_BYTES_MAX + 1),
        ] {
            assert!(
                matches!(check_batch_id(bad), Err(IdError::BatchId(_))),
                "{bad:?}"
            );
        }
    }
}
