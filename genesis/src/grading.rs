//! The consortium's grading rules (分级分类): part of the policy, so in genesis and
//! changed only by a `set_policy` vote, which takes effect at a stated height. The
//! rules are data; `xinlian_client::credit` applies them to an enterprise's verified
//! records. Integer arithmetic only, windows in whole days: every node and every
//! client computes the same grade from the same records.

use serde::{Deserialize, Serialize};

/// A grade: A (守信), B (基本守信), C (失信), D (严重失信).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
}

impl std::fmt::Display for Grade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::D => "D",
        })
    }
}

/// Points an outcome class adds while it is in its window: an outcome dated `d`
/// counts on date `D` iff `d <= D < d + window_days`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    pub points: i32,
    pub window_days: u32,
}

/// A domain whose outcomes weigh more (or less): food and drugs touch health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainWeight {
    pub domain: String,
    /// Applied to a breach's points, by integer division toward zero.
    pub percent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grading {
    /// Raised by every change of the rules: a grade names the version it was computed
    /// under, and old grades are recomputed under the rules then in force.
    pub version: u32,
    /// The score of an enterprise with no record in any window.
    pub base: i32,
    /// Lowest score of each grade (A ≥ a_min > B ≥ b_min > C ≥ c_min > D).
    pub a_min: i32,
    pub b_min: i32,
    pub c_min: i32,
    pub fulfilled: Weight,
    /// At most this many points from fulfilled commitments together.
    pub fulfilled_cap: i32,
    pub breach_minor: Weight,
    pub breach_general: Weight,
    pub breach_serious: Weight,
    /// A repaired breach keeps this share of its points from the repair decision's date
    /// (0: a repair erases it; 100: a repair changes nothing).
    pub repaired_percent: u32,
    /// Points while on the reward list (守信激励).
    pub reward_list_points: i32,
    /// A listing lapses by itself this many days after its effective date.
    pub reward_list_days: u32,
    pub serious_list_days: u32,
    /// The best grade possible while on the serious-dishonesty list.
    pub serious_list_cap: Grade,
    /// The best grade possible with an unrepaired serious breach in its window.
    pub serious_breach_cap: Grade,
    /// Per-domain multipliers for breach points; unlisted domains count 100 %.
    pub domain_percent: Vec<DomainWeight>,
}

/// Bounds that keep every score well inside `i64` however many records an enterprise has.
pub const POINTS_MAX: i32 = 1000;
pub const WINDOW_DAYS_MAX: u32 = 36_500;
pub const PERCENT_MAX: u32 = 1000;
pub const DOMAINS_MAX: usize = 64;

impl Default for Grading {
    /// The devnet's rules, after the seed's 分级分类 practice (docs/credit.md): a clean
    /// record is B; kept commitments lift it to A; a general breach drops it to C for a
    /// year; a serious one, or a serious-dishonesty listing, means D.
    fn default() -> Self {
        let w = |points, window_days| Weight {
            points,
            window_days,
        };
        Grading {
            version: 1,
            base: 80,
            a_min: 90,
            b_min: 70,
            c_min: 50,
            fulfilled: w(3, 1095),
            fulfilled_cap: 15,
            breach_minor: w(-5, 90),
            breach_general: w(-20, 365),
            breach_serious: w(-50, 1095),
            repaired_percent: 25,
            reward_list_points: 10,
            reward_list_days: 1095,
            serious_list_days: 1095,
            serious_list_cap: Grade::D,
            serious_breach_cap: Grade::C,
            domain_percent: ["food", "drug", "health"]
                .into_iter()
                .map(|d| DomainWeight {
                    domain: d.into(),
                    percent: 150,
                })
                .collect(),
        }
    }
}

impl Grading {
    pub fn grade_of(&self, score: i64) -> Grade {
        if score >= self.a_min as i64 {
            Grade::A
        } else if score >= self.b_min as i64 {
            Grade::B
        } else if score >= self.c_min as i64 {
            Grade::C
        } else {
            Grade::D
        }
    }

    /// The rules with the version cleared: what a change compares.
    pub fn without_version(&self) -> Grading {
        Grading {
            version: 0,
            ..self.clone()
        }
    }

    pub fn domain_percent(&self, domain: &str) -> u32 {
        self.domain_percent
            .iter()
            .find(|d| d.domain == domain)
            .map_or(100, |d| d.percent)
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.version == 0 {
            out.push("grading.version must be at least 1".into());
        }
        if !(self.a_min > self.b_min && self.b_min > self.c_min) {
            out.push(format!(
                "grading thresholds must fall: a_min {} > b_min {} > c_min {}",
                self.a_min, self.b_min, self.c_min
            ));
        }
        let points = [
            ("base", self.base),
            ("a_min", self.a_min),
            ("b_min", self.b_min),
            ("c_min", self.c_min),
            ("fulfilled.points", self.fulfilled.points),
            ("fulfilled_cap", self.fulfilled_cap),
            ("breach_minor.points", self.breach_minor.points),
            ("breach_general.points", self.breach_general.points),
            ("breach_serious.points", self.breach_serious.points),
            ("reward_list_points", self.reward_list_points),
        ];
        for (name, p) in points {
            if p.unsigned_abs() > POINTS_MAX as u32 {
                out.push(format!("grading.{name} {p} is outside ±{POINTS_MAX}"));
            }
        }
        let windows = [
            ("fulfilled", self.fulfilled.window_days),
            ("breach_minor", self.breach_minor.window_days),
            ("breach_general", self.breach_general.window_days),
            ("breach_serious", self.breach_serious.window_days),
            ("reward_list_days", self.reward_list_days),
            ("serious_list_days", self.serious_list_days),
        ];
        for (name, d) in windows {
            if !(1..=WINDOW_DAYS_MAX).contains(&d) {
                out.push(format!(
                    "grading.{name}: {d} days is outside 1..={WINDOW_DAYS_MAX}"
                ));
            }
        }
        if self.repaired_percent > 100 {
            out.push(format!(
                "grading.repaired_percent {} is over 100",
                self.repaired_percent
            ));
        }
        if self.domain_percent.len() > DOMAINS_MAX {
            out.push(format!(
                "grading.domain_percent has over {DOMAINS_MAX} entries"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.domain_percent {
            if !seen.insert(d.domain.as_str()) {
                out.push(format!("grading.domain_percent names '{}' twice", d.domain));
            }
            if crate::model::check_slug(&d.domain, crate::model::ID_BYTES_MAX).is_err() {
                out.push(format!(
                    "grading.domain_percent: '{}' is not a domain",
                    d.domain
                ));
            }
            if d.percent > PERCENT_MAX {
                out.push(format!(
                    "grading.domain_percent: {} % for '{}' is over {PERCENT_MAX}",
                    d.percent, d.domain
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_every_bad_rule_is_named() {
        assert!(Grading::default().problems().is_empty());
        let bad = Grading {
            version: 0,
            b_min: 95,
            breach_minor: Weight {
                points: -5000,
                window_days: 0,
            },
            repaired_percent: 101,
            domain_percent: vec![
                DomainWeight {
                    domain: "food".into(),
                    percent: 150,
                },
                DomainWeight {
                    domain: "food".into(),
                    percent: 5000,
                },
            ],
            ..Grading::default()
        };
        let p = bad.problems().join("\n");
        for want in [
            "version must be at least 1",
            "thresholds must fall",
            "breach_minor.points -5000",
            "breach_minor: 0 days",
            "repaired_percent 101",
            "names 'food' twice",
            "5000 % for 'food'",
        ] {
            assert!(p.contains(want), "{want} missing from:\n{p}");
        }
    }

    #[test]
    fn grades_follow_the_thresholds() {
        let r = Grading::default();
        assert_eq!(r.grade_of(90), Grade::A);
        assert_eq!(r.grade_of(89), Grade::B);
        assert_eq!(r.grade_of(70), Grade::B);
        assert_eq!(r.grade_of(69), Grade::C);
        assert_eq!(r.grade_of(50), Grade::C);
        assert_eq!(r.grade_of(49), Grade::D);
        assert_eq!(r.grade_of(i64::MIN), Grade::D);
        assert_eq!(r.domain_percent("food"), 150);
        assert_eq!(r.domain_percent("market"), 100);
    }
}
