//! A devnet scenario as data: the consortium's members, the sample enterprises, and
//! the ordered steps that become signed records. The format is documented at the top
//! of `sample.toml` (the default scenario, embedded in the binary); in short, each
//! step names a label, a signer, a record kind and a body in the shape
//! `xinlian submit --kind KIND --body FILE` accepts, with a few whole-string
//! substitutions (`@LABEL`, `$today-N`, `$now-Nd+Hh`, `$uscc SLUG`, `$name SLUG`,
//! `$key SLUG`, `$possession SLUG`, `$gtin DIGITS`, `$sha256 TEXT`).
//!
//! [`Scenario::parse`] checks everything that can be checked without a chain — kinds,
//! signers, labels and references, substitutions, and every body's shape — so a bad
//! file fails before any record is submitted, with an error naming the step and field.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value};
use xinlian_client::crypto::Signature;
use xinlian_client::ids::{Uscc, gtin_check_digit};
use xinlian_client::record::{Body, Kind, RecordId};
use xinlian_client::when::{Date, EventTime, MS_PER_DAY};
use xinlian_genesis::scaffold::MemberSpec;
use xinlian_genesis::{PublicKey, Role};

/// The default scenario: the devnet's sample data.
pub const SAMPLE: &str = include_str!("../sample.toml");

/// Beijing time, the offset of every `$now…` event time.
const OFFSET_MINUTES: i16 = 480;

/// What is wrong with a scenario, naming where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// Not TOML, or not the scenario's shape (the message gives line and column).
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    /// A member or enterprise entry is unusable.
    #[error("{origin}: {entry}: {message}")]
    Entry {
        origin: String,
        entry: String,
        message: String,
    },
    /// A step is unusable: `field` is `signer`, `kind`, `label`, or a path into the
    /// body such as `body.inputs[0].quantity`.
    #[error("{origin}: step {number} '{label}', {field}: {message}")]
    Step {
        origin: String,
        /// 1-based, in file order.
        number: usize,
        label: String,
        field: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    chain_id: String,
    #[serde(rename = "member", default)]
    members: Vec<MemberEntry>,
    #[serde(rename = "enterprise", default)]
    enterprises: Vec<EnterpriseEntry>,
    #[serde(default)]
    defaults: BTreeMap<String, Map<String, Value>>,
    /// The genesis policy's `trace`: the fields each trace domain hides.
    #[serde(default)]
    trace: xinlian_genesis::TracePolicy,
    #[serde(rename = "step", default)]
    steps: Vec<Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    id: String,
    name: String,
    region: String,
    roles: Vec<String>,
    #[serde(default)]
    voting_power: u64,
}

/// A sample enterprise: its slug (for keys and substitutions), name and USCC.
#[derive(Clone, Debug)]
pub struct Enterprise {
    pub slug: String,
    pub name: String,
    pub uscc: Uscc,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnterpriseEntry {
    slug: String,
    name: String,
    uscc: String,
}

/// One record to make, as written (before substitutions).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub label: String,
    /// A member id (its agency signing key) or an enterprise slug (its key).
    pub signer: String,
    pub kind: String,
    #[serde(default = "empty_table")]
    pub body: Value,
}

fn empty_table() -> Value {
    Value::Object(Map::new())
}

/// A parsed and checked scenario.
pub struct Scenario {
    pub origin: String,
    pub chain_id: String,
    pub members: Vec<MemberSpec>,
    pub enterprises: Vec<Enterprise>,
    pub steps: Vec<Step>,
    /// What the genesis of a new devnet folder sets as `policy.trace`.
    pub trace: xinlian_genesis::TracePolicy,
    kinds: Vec<Kind>,
    defaults: BTreeMap<String, Map<String, Value>>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("origin", &self.origin)
            .field("chain_id", &self.chain_id)
            .field(
                "members",
                &self.members.iter().map(|m| &m.id).collect::<Vec<_>>(),
            )
            .field("enterprises", &self.enterprises)
            .field("steps", &self.steps.len())
            .finish()
    }
}

/// What substitutions read: the clock, the ids of the records made so far, and the
/// enterprises' public keys with each key's proof of possession for its enterprise.
pub struct Context<'a> {
    pub now_ms: i64,
    pub ids: &'a HashMap<String, RecordId>,
    pub keys: &'a HashMap<String, (PublicKey, Signature)>,
}

impl Scenario {
    /// The embedded sample scenario.
    pub fn sample() -> Scenario {
        Scenario::parse(SAMPLE, "sample.toml").expect("the embedded sample scenario is valid")
    }

    /// Parses `text` (from `origin`, used in errors) and checks every step.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let entry = |entry: String, message: String| ScenarioError::Entry {
            origin: origin.into(),
            entry,
            message,
        };
        let members = file
            .members
            .iter()
            .map(|m| member_spec(m).map_err(|e| entry(format!("member '{}'", m.id), e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut enterprises: Vec<Enterprise> = Vec::new();
        for e in &file.enterprises {
            let uscc = enterprise_uscc(&e.uscc)
                .map_err(|m| entry(format!("enterprise '{}', uscc", e.slug), m))?;
            if enterprises.iter().any(|o| o.slug == e.slug) {
                return Err(entry(
                    format!("enterprise '{}'", e.slug),
                    "slug listed twice".into(),
                ));
            }
            if members.iter().any(|m| m.id == e.slug) {
                return Err(entry(
                    format!("enterprise '{}'", e.slug),
                    "slug is also a member id: signers would be ambiguous".into(),
                ));
            }
            enterprises.push(Enterprise {
                slug: e.slug.clone(),
                name: e.name.clone(),
                uscc,
            });
        }
        for kind in file.defaults.keys() {
            if let Err(e) = Kind::parse(kind) {
                return Err(entry(format!("defaults.{kind}"), e.to_string()));
            }
        }
        let kinds = (file.steps.iter().enumerate())
            .map(|(i, st)| {
                Kind::parse(&st.kind)
                    .map_err(|e| step_error(origin, i, &st.label, "kind", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let scenario = Scenario {
            origin: origin.into(),
            chain_id: file.chain_id,
            members,
            enterprises,
            steps: file.steps,
            trace: file.trace,
            kinds,
            defaults: file.defaults,
        };
        scenario.check_steps()?;
        Ok(scenario)
    }

    /// Labels unique, signers known, and a dry run of every body with stand-in ids and
    /// keys, so that references, substitutions and shapes are all checked.
    fn check_steps(&self) -> Result<(), ScenarioError> {
        let keys: HashMap<String, (PublicKey, Signature)> = self
            .enterprises
            .iter()
            .map(|e| (e.slug.clone(), (PublicKey([0; 32]), Signature([0; 64]))))
            .collect();
        let mut ids = HashMap::new();
        let mut labels = HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.label.is_empty() || step.label.starts_with('@') {
                return Err(self.step_error(i, "label", "must be non-empty, not starting with @"));
            }
            if !labels.insert(step.label.as_str()) {
                return Err(self.step_error(i, "label", "an earlier step has the same label"));
            }
            if !self.members.iter().any(|m| m.id == step.signer)
                && self.enterprise(&step.signer).is_none()
            {
                return Err(self.step_error(
                    i,
                    "signer",
                    format!(
                        "'{}' is neither a member id nor an enterprise slug",
                        step.signer
                    ),
                ));
            }
            self.body(
                i,
                &Context {
                    now_ms: 0,
                    ids: &ids,
                    keys: &keys,
                },
            )?;
            ids.insert(step.label.clone(), RecordId([0; 32]));
        }
        Ok(())
    }

    pub fn enterprise(&self, slug: &str) -> Option<&Enterprise> {
        self.enterprises.iter().find(|e| e.slug == slug)
    }

    pub fn kind(&self, step: usize) -> Kind {
        self.kinds[step]
    }

    /// Step `i`'s body: defaults filled in, substitutions made, parsed as its kind.
    pub fn body(&self, i: usize, cx: &Context<'_>) -> Result<Body, ScenarioError> {
        let step = &self.steps[i];
        let kind = self.kinds[i];
        let mut value = step.body.clone();
        let Value::Object(fields) = &mut value else {
            return Err(self.step_error(i, "body", "must be a table"));
        };
        if let Some(defaults) = self.defaults.get(kind.name()) {
            for (k, v) in defaults {
                fields.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let mut path = String::from("body");
        self.substitute(&mut value, &mut path, cx)
            .map_err(|message| self.step_error(i, &path, message))?;
        let wrapped = serde_json::json!({ kind.name(): value });
        serde_path_to_error::deserialize::<_, Body>(wrapped).map_err(|e| {
            let inner = e.path().to_string();
            let field = match inner.split_once('.') {
                Some((_, rest)) => format!("body.{rest}"),
                None => "body".to_string(),
            };
            self.step_error(
                i,
                &field,
                format!("not a {} body: {}", kind.name(), e.inner()),
            )
        })
    }

    fn step_error(&self, i: usize, field: &str, message: impl Into<String>) -> ScenarioError {
        step_error(&self.origin, i, &self.steps[i].label, field, message)
    }

    /// Replaces substitutions throughout `v`; on error `path` names the field.
    fn substitute(&self, v: &mut Value, path: &mut String, cx: &Context<'_>) -> Result<(), String> {
        match v {
            Value::String(s) => {
                if let Some(new) = self.expand(s, cx)? {
                    *s = new;
                }
            }
            Value::Array(items) => {
                for (n, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{n}]"));
                    self.substitute(item, path, cx)?;
                    path.truncate(len);
                }
            }
            Value::Object(fields) => {
                // A bare TOML date (`date = 2026-05-01`) arrives as a one-field table.
                if let Some(Value::String(d)) = fields.get("$__toml_private_datetime") {
                    *v = Value::String(d.clone());
                    return Ok(());
                }
                for (k, item) in fields.iter_mut() {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    self.substitute(item, path, cx)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The replacement for a string that is a substitution; `None` for plain text.
    fn expand(&self, s: &str, cx: &Context<'_>) -> Result<Option<String>, String> {
        if s.starts_with("$$") || s.starts_with("@@") {
            return Ok(Some(s[1..].to_string()));
        }
        if let Some(label) = s.strip_prefix('@') {
            return match cx.ids.get(label) {
                Some(id) => Ok(Some(id.to_hex())),
                None => Err(format!("'{s}': no earlier step is labelled '{label}'")),
            };
        }
        let Some(form) = s.strip_prefix('$') else {
            return Ok(None);
        };
        let (name, arg) = form.split_once(' ').unwrap_or((form, ""));
        let arg = arg.trim();
        let enterprise = || {
            self.enterprise(arg)
                .ok_or_else(|| format!("'{s}': no enterprise has the slug '{arg}'"))
        };
        let out = match name {
            "uscc" => enterprise()?.uscc.to_string(),
            "name" => enterprise()?.name.clone(),
            "key" | "possession" => {
                enterprise()?;
                let (key, possession) = cx
                    .keys
                    .get(arg)
                    .ok_or_else(|| format!("'{s}': no key for enterprise '{arg}'"))?;
                if name == "key" {
                    key.to_hex()
                } else {
                    possession.to_hex()
                }
            }
            "gtin" => {
                if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "'{s}': expected $gtin DIGITS (without the check digit)"
                    ));
                }
                format!("{arg}{}", gtin_check_digit(arg))
            }
            "sha256" => xinlian_genesis::canonical::sha256(arg.as_bytes()).to_hex(),
            _ if name.starts_with("today") && arg.is_empty() => {
                let days = day_offset(&name["today".len()..])
                    .ok_or_else(|| format!("'{s}': expected $today, $today-N or $today+N"))?;
                Date(Date::of_ms_beijing(cx.now_ms).0.saturating_add(days)).to_string()
            }
            _ if name.starts_with("now") && arg.is_empty() => {
                let shift = time_offset(&name["now".len()..]).ok_or_else(|| {
                    format!("'{s}': expected $now followed by terms such as -20d, +4h, -30m")
                })?;
                EventTime {
                    unix_ms: cx.now_ms.saturating_add(shift),
                    offset_minutes: OFFSET_MINUTES,
                }
                .to_string()
            }
            _ => {
                return Err(format!(
                    "'{s}': unknown substitution (known: @LABEL, $today±N, $now±Nd±Nh±Nm, \
                     $uscc SLUG, $name SLUG, $key SLUG, $possession SLUG, $gtin DIGITS, \
                     $sha256 TEXT; $$ for a literal $)"
                ));
            }
        };
        Ok(Some(out))
    }
}

fn step_error(
    origin: &str,
    i: usize,
    label: &str,
    field: &str,
    message: impl Into<String>,
) -> ScenarioError {
    ScenarioError::Step {
        origin: origin.to_string(),
        number: i + 1,
        label: label.to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn member_spec(m: &MemberEntry) -> Result<MemberSpec, String> {
    Ok(MemberSpec {
        id: m.id.clone(),
        name: m.name.clone(),
        region: m.region.clone(),
        roles: m
            .roles
            .iter()
            .map(|r| Role::parse(r))
            .collect::<Result<_, _>>()?,
        voting_power: m.voting_power,
    })
}

/// 17 characters get their check character; 18 must pass the check.
fn enterprise_uscc(text: &str) -> Result<Uscc, String> {
    match text.chars().count() {
        17 => Uscc::with_check(text).map_err(|e| e.to_string()),
        _ => {
            let u = Uscc(text.to_string());
            u.check().map_err(|e| e.to_string())?;
            Ok(u)
        }
    }
}

/// `""`, `-N` or `+N` days.
fn day_offset(s: &str) -> Option<i32> {
    if s.is_empty() {
        return Some(0);
    }
    let (sign, digits) = signed(s)?;
    digits.parse::<i32>().ok().map(|n| sign as i32 * n)
}

/// Terms `±N d|h|m`, in milliseconds.
fn time_offset(mut s: &str) -> Option<i64> {
    let mut total: i64 = 0;
    while !s.is_empty() {
        let (sign, rest) = signed(s)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = match rest[digits..].chars().next()? {
            'd' => MS_PER_DAY,
            'h' => 3_600_000,
            'm' => 60_000,
            _ => return None,
        };
        total = total.checked_add(sign * n.checked_mul(unit)?)?;
        s = &rest[digits + 1..];
    }
    Some(total)
}

fn signed(s: &str) -> Option<(i64, &str)> {
    if let Some(r) = s.strip_prefix('-') {
        Some((-1, r))
    } else {
        s.strip_prefix('+').map(|r| (1, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses_and_checks() {
        let s = Scenario::sample();
        assert_eq!(s.chain_id, "xinlian-devnet");
        assert_eq!(s.members.len(), 7);
        assert_eq!(s.enterprises.len(), 7);
        assert_eq!(s.steps.len(), 45);
    }

    #[test]
    fn offsets() {
        assert_eq!(day_offset("-120"), Some(-120));
        assert_eq!(day_offset("+90"), Some(90));
        assert_eq!(day_offset("120"), None);
        assert_eq!(
            time_offset("-18d+4h"),
            Some(-18 * MS_PER_DAY + 4 * 3_600_000)
        );
        assert_eq!(time_offset(""), Some(0));
        assert_eq!(time_offset("-3"), None);
        assert_eq!(time_offset("-3x"), None);
    }

    fn one_step(step: &str) -> String {
        format!(
            "chain_id = \"t\"\n[[enterprise]]\nslug = \"farm\"\nname = \"Farm\"\n\
             uscc = \"93310117MA1G0A1B2\"\n[[member]]\nid = \"reg\"\nname = \"R\"\n\
             region = \"310000\"\nroles = [\"validator\", \"registrar\"]\nvoting_power = 1\n\
             [[step]]\nlabel = \"first\"\nsigner = \"reg\"\nkind = \"register_entity\"\n\
             body = {{ uscc = \"$uscc farm\", name = \"$name farm\", key = \"$key farm\", \
             possession = \"$possession farm\" }}\n{step}"
        )
    }

    fn error(step: &str) -> String {
        Scenario::parse(&one_step(step), "t.toml")
            .expect_err("should be refused")
            .to_string()
    }

    #[test]
    fn errors_name_the_step_and_field() {
        Scenario::parse(&one_step(""), "t.toml").unwrap();
        let e = error(
            "[[step]]\nlabel = \"c\"\nsigner = \"farm\"\nkind = \"outcome\"\n[step.body]\n\
             commitment = \"@nope\"\n",
        );
        assert!(
            e.contains("step 2 'c', body.commitment: '@nope': no earlier step"),
            "{e}"
        );
        let e = error(
            "[[step]]\nlabel = \"c\"\nsigner = \"farm\"\nkind = \"recall\"\n[step.body]\n\
             batch = \"b\"\nreason = \"r\"\ntime = \"$now-2x\"\n",
        );
        assert!(e.contains("step 2 'c', body.time: '$now-2x'"), "{e}");
        let e = error(
            "[[step]]\nlabel = \"c\"\nsigner = \"farm\"\nkind = \"recall\"\n[step.body]\n\
             batch = 7\nreason = \"r\"\ntime = \"$now\"\n",
        );
        assert!(
            e.contains("step 2 'c', body.batch: not a recall body"),
            "{e}"
        );
        let e = error("[[step]]\nlabel = \"c\"\nsigner = \"nobody\"\nkind = \"recall\"\n");
        assert!(e.contains("step 2 'c', signer: 'nobody'"), "{e}");
        let e = error("[[step]]\nlabel = \"c\"\nsigner = \"farm\"\nkind = \"shout\"\n");
        assert!(e.contains("step 2 'c', kind: unknown kind 'shout'"), "{e}");
        let e = error("[[step]]\nlabel = \"first\"\nsigner = \"farm\"\nkind = \"recall\"\n");
        assert!(e.contains("step 2 'first', label:"), "{e}");
        let e = error(
            "[[step]]\nlabel = \"c\"\nsigner = \"farm\"\nkind = \"recall\"\n[step.body]\n\
             batch = \"$uscc barn\"\nreason = \"r\"\ntime = \"$now\"\n",
        );
        assert!(e.contains("body.batch: '$uscc barn': no enterprise"), "{e}");
    }

    #[test]
    fn a_bare_toml_date_reads_as_a_date() {
        let s = Scenario::parse(
            &one_step(
                "[[step]]\nlabel = \"d\"\nsigner = \"reg\"\nkind = \"repair_decision\"\n\
                 [step.body]\napplication = \"@first\"\napproved = true\nreason = \"ok\"\n\
                 date = 2026-05-01\n",
            ),
            "t.toml",
        )
        .unwrap();
        let ids = HashMap::from([("first".to_string(), RecordId([7; 32]))]);
        let keys = HashMap::new();
        let cx = Context {
            now_ms: 0,
            ids: &ids,
            keys: &keys,
        };
        match s.body(1, &cx).unwrap() {
            Body::RepairDecision(d) => assert_eq!(d.date, Date::parse("2026-05-01").unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn substitutions_expand() {
        let s = Scenario::parse(&one_step(""), "t.toml").unwrap();
        let ids = HashMap::from([("first".to_string(), RecordId([7; 32]))]);
        let keys = HashMap::from([("farm".to_string(), (PublicKey([9; 32]), Signature([8; 64])))]);
        let cx = Context {
            now_ms: 1_795_881_600_000,
            ids: &ids,
            keys: &keys,
        };
        let x = |t: &str| s.expand(t, &cx).unwrap();
        assert_eq!(x("@first"), Some(RecordId([7; 32]).to_hex()));
        assert_eq!(x("$key farm"), Some(PublicKey([9; 32]).to_hex()));
        assert_eq!(x("$possession farm"), Some(Signature([8; 64]).to_hex()));
        assert_eq!(x("$uscc farm").unwrap().len(), 18);
        assert_eq!(x("$gtin 690123456789"), Some("6901234567892".into()));
        assert_eq!(x("$today-1"), Some("2026-11-28".into()));
        assert_eq!(x("$now-1d+1h"), Some("2026-11-28T01:00:00+08:00".into()));
        assert_eq!(x("$$5"), Some("$5".into()));
        assert_eq!(x("plain text"), None);
    }
}
