//! A structural mutator for JSON answers: the fuzz input is read as a short script of
//! edits (which node of the document, what to do to it), so that a valid answer
//! becomes a plausible lie — a hex digit flipped, an index moved, an element dropped,
//! duplicated or swapped, a piece of the answer spliced in where another belongs —
//! rather than text that no longer parses. libFuzzer still mutates the script bytes
//! freely; every script is a valid edit sequence.

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use serde_json::Value;

/// Most edits one input applies.
pub const EDITS_MAX: u32 = 6;

/// JSON pointers of every node, depth first (the root is "").
fn paths(v: &Value) -> Vec<String> {
    fn walk(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            Value::Object(o) => {
                for (k, x) in o {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(x, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
        out.push(at);
    }
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn mutate_hex(s: &str, u: &mut Unstructured) -> Result<String> {
    let mut b = s.as_bytes().to_vec();
    match u.int_in_range(0..=3u8)? {
        0 => {
            let i = u.choose_index(b.len())?;
            let nibble = u.int_in_range(0..=15u8)?;
            b[i] = b"0123456789abcdef"[usize::from(nibble)];
        }
        1 => {
            let keep = u.choose_index(b.len() / 2 + 1)? * 2;
            b.truncate(keep);
        }
        2 => {
            let extra: Vec<u8> = u.arbitrary()?;
            b.extend(hex_of(&extra).bytes());
        }
        _ => {
            // Flip one bit of one byte.
            let i = u.choose_index(b.len() / 2)? * 2;
            let byte = u8::from_str_radix(std::str::from_utf8(&b[i..i + 2]).unwrap_or("00"), 16)
                .unwrap_or(0);
            let flipped = byte ^ (1 << u.int_in_range(0..=7u8)?);
            b[i..i + 2].copy_from_slice(hex_of(&[flipped]).as_bytes());
        }
    }
    Ok(String::from_utf8(b).unwrap_or_default())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mutate_number(n: &serde_json::Number, u: &mut Unstructured) -> Result<Value> {
    let x = n.as_u64().unwrap_or(0);
    Ok(Value::from(match u.int_in_range(0..=5u8)? {
        0 => x.wrapping_add(1),
        1 => x.wrapping_sub(1),
        2 => 0,
        3 => u64::MAX,
        4 => x ^ (1 << u.int_in_range(0..=63u32)?),
        _ => u.arbitrary::<u64>()?,
    }))
}

fn mutate_array(a: &mut Vec<Value>, u: &mut Unstructured, donor: &Value) -> Result<()> {
    if a.is_empty() {
        a.push(donor.clone());
        return Ok(());
    }
    let i = u.choose_index(a.len())?;
    match u.int_in_range(0..=4u8)? {
        0 => {
            a.remove(i);
        }
        1 => {
            let x = a[i].clone();
            a.insert(i, x);
        }
        2 => {
            let j = u.choose_index(a.len())?;
            a.swap(i, j);
        }
        3 => a.truncate(i),
        _ => a.insert(i, donor.clone()),
    }
    Ok(())
}

/// One edit at `path`; `donor` is another node of the original document.
fn edit(node: &mut Value, u: &mut Unstructured, donor: &Value) -> Result<()> {
    // A fifth of edits replace the node by another piece of the answer.
    if u.ratio(1, 5)? {
        *node = donor.clone();
        return Ok(());
    }
    match node {
        Value::String(s) if is_hex(s) => *s = mutate_hex(s, u)?,
        Value::String(s) => {
            *s = match u.int_in_range(0..=2u8)? {
                0 => String::new(),
                1 => format!("{s}{}", u.arbitrary::<char>()?),
                _ => u.arbitrary()?,
            }
        }
        Value::Number(n) => *node = mutate_number(n, u)?,
        Value::Bool(b) => *b = !*b,
        Value::Null => *node = donor.clone(),
        Value::Array(a) => mutate_array(a, u, donor)?,
        Value::Object(o) => {
            if !o.is_empty() {
                let k = o.keys().nth(u.choose_index(o.len())?).cloned();
                if let Some(k) = k {
                    if u.arbitrary()? {
                        o.remove(&k);
                    } else {
                        o.insert(k, Value::Null);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies up to [`EDITS_MAX`] edits chosen by `u` to a copy of `doc`.
pub fn mutate(doc: &Value, u: &mut Unstructured) -> Value {
    let original = paths(doc);
    let mut out = doc.clone();
    let edits = u.int_in_range(1..=EDITS_MAX).unwrap_or(1);
    for _ in 0..edits {
        if u.is_empty() {
            break;
        }
        let targets = paths(&out);
        let (Ok(t), Ok(d)) = (u.choose(&targets), u.choose(&original)) else {
            break;
        };
        let donor = doc.pointer(d).cloned().unwrap_or(Value::Null);
        let Some(node) = out.pointer_mut(t) else {
            break;
        };
        if edit(node, u, &donor).is_err() {
            break;
        }
    }
    out
}
