//! `xinlian credit`: an enterprise's complete credit record, verified against genesis,
//! with its grade and reasons; claims of absence checked against it; an offline report
//! (`--report`, checked by `xinlian verify`) and its human-readable page (`--html`,
//! Chinese and English, with a QR code carrying what re-checks it).

use std::path::Path;

use xinlian_client::credit::{CREDIT_REPORT_FORMAT, CreditError, CreditReport, VerifiedCredit};
use xinlian_client::genesis::canonical::sha256;
use xinlian_client::http::{FetchVerifyError, NodeClient, fetch_credit};
use xinlian_client::ids::Uscc;
use xinlian_client::state::CommitmentStatus;
use xinlian_client::when::Date;

use crate::verify::{fetch_failure, load_light, save_light};
use crate::{Cli, Failure, local, print, require_genesis, write_atomically};

pub(crate) struct CreditArgs<'a> {
    pub uscc: &'a str,
    pub report: Option<&'a Path>,
    pub html: Option<&'a Path>,
    /// `FROM:TO`: no serious breach determined in between (inclusive).
    pub no_serious_breach: Option<&'a str>,
    /// `DATE`: not on the serious-dishonesty list that day.
    pub not_listed_on: Option<&'a str>,
}

pub(crate) fn run(cli: &Cli, node: &NodeClient, a: &CreditArgs) -> Result<(), Failure> {
    let u = Uscc(a.uscc.to_string());
    u.check_format()
        .map_err(|e| local(format!("{}: {e}", a.uscc)))?;
    let claims = Claims::parse(a)?;
    let g = require_genesis(cli)?;
    let (mut light, path) = load_light(cli, g)?;
    let fetched = fetch_credit(node, &mut light, &u);
    save_light(&light, path);
    let (v, proof) = match fetched {
        Ok(x) => x,
        Err(FetchVerifyError::Credit(CreditError::NotRegistered { uscc, height })) => {
            // Proven: the credit index of a certified header has no entry for it.
            return Err(Failure::Invalid(format!(
                "VERIFIED ABSENT: {uscc} is not registered as of header {height} (the credit index proves it)"
            )));
        }
        Err(e) => return Err(fetch_failure(e)),
    };
    if let Some(out) = a.report {
        let report = CreditReport {
            format: CREDIT_REPORT_FORMAT.into(),
            chain: light.chain(),
            roster_changes: light.changes_until(v.height + 1),
            proof,
        };
        let bytes = serde_json::to_vec_pretty(&report).expect("serialises");
        write_atomically(out, &bytes)?;
        if let Some(html) = a.html {
            let digest = sha256(&bytes).to_hex();
            write_atomically(
                html,
                page(&v, &light.chain().to_hex(), Some(&digest)).as_bytes(),
            )?;
        }
    } else if let Some(html) = a.html {
        write_atomically(html, page(&v, &light.chain().to_hex(), None).as_bytes())?;
    }
    print(cli.json, &v, || text(&v));
    for (f, what) in [(a.report, "report"), (a.html, "page")] {
        if let Some(f) = f {
            eprintln!("{what} written to {}", f.display());
        }
    }
    claims.check(&v)
}

/// Claims of absence asked on the command line.
struct Claims {
    no_serious_breach: Option<(Date, Date)>,
    not_listed_on: Option<Date>,
}

impl Claims {
    fn parse(a: &CreditArgs) -> Result<Claims, Failure> {
        let date = |s: &str| Date::parse(s).map_err(local);
        let no_serious_breach = match a.no_serious_breach {
            None => None,
            Some(s) => {
                let (from, to) = s
                    .split_once(':')
                    .ok_or_else(|| local(format!("'{s}' is not FROM:TO (two dates YYYY-MM-DD)")))?;
                let (from, to) = (date(from)?, date(to)?);
                if from > to {
                    return Err(local(format!("{from} is after {to}")));
                }
                Some((from, to))
            }
        };
        let not_listed_on = a.not_listed_on.map(date).transpose()?;
        Ok(Claims {
            no_serious_breach,
            not_listed_on,
        })
    }

    /// Each claim holds, printed as verified, or the first refuted one fails (exit 1).
    /// A claim speaks only up to the header's date, and says which header.
    fn check(&self, v: &VerifiedCredit) -> Result<(), Failure> {
        let u = &v.history.uscc;
        let (height, as_of) = (v.height, v.grade.as_of);
        if let Some((from, to)) = self.no_serious_breach {
            v.no_serious_breach_between(from, to)
                .map_err(|e| Failure::Invalid(e.to_string()))?;
            eprintln!(
                "VERIFIED: no serious breach of {u} determined between {from} and {to} was recorded by header {height} ({as_of})"
            );
        }
        if let Some(d) = self.not_listed_on {
            v.not_seriously_listed_on(d)
                .map_err(|e| Failure::Invalid(e.to_string()))?;
            eprintln!(
                "VERIFIED: by header {height} ({as_of}), {u} was not on the serious-dishonesty list on {d}"
            );
        }
        Ok(())
    }
}

fn status(s: CommitmentStatus) -> String {
    match s {
        CommitmentStatus::Pending => "pending".into(),
        CommitmentStatus::Fulfilled => "fulfilled".into(),
        CommitmentStatus::NotVerifiable => "not verifiable".into(),
        CommitmentStatus::Breached(sev) => format!("breached ({sev:?})").to_lowercase(),
        CommitmentStatus::Repaired(sev) => format!("repaired ({sev:?} breach)").to_lowercase(),
    }
}

pub(crate) fn text(v: &VerifiedCredit) -> String {
    let h = &v.history;
    let g = &v.grade;
    let mut out = format!(
        "VERIFIED credit record of {} {} — complete as of header {} ({})\n\
         grade {} (score {}, rules version {}, as of {})\n",
        h.uscc, h.name, v.height, v.header_hash, g.grade, g.score, g.rules_version, g.as_of
    );
    for r in &g.reasons {
        out += &format!("  {:+4}  {:<16} {}\n", r.points, r.rule, r.detail);
    }
    for c in &g.caps {
        out += &format!("  cap   {:<16} {}\n", c.rule, c.detail);
    }
    out += &format!(
        "{} credit records; commitments {}:\n",
        h.records.len(),
        h.commitments.len()
    );
    for c in &h.commitments {
        out += &format!(
            "  {} {:?} to '{}' ({}), {} — {}\n",
            c.at.date,
            c.kind,
            c.accepting_agency,
            c.domain,
            c.matter,
            status(c.status)
        );
        if let Some(o) = &c.outcome {
            out += &format!(
                "      outcome {} on {} ({})\n",
                o.at.id, o.at.date, o.document
            );
        }
        for r in &c.repairs {
            let d = match &r.decision {
                None => "open".to_string(),
                Some(d) if d.approved => format!("approved on {}", d.at.date),
                Some(d) => format!("rejected on {} ({})", d.at.date, d.reason),
            };
            out += &format!("      repair applied {} — {d}\n", r.application.date);
        }
    }
    for l in &h.listings {
        let end = match &l.removed {
            Some((r, why)) => format!("removed {} ({why})", r.date),
            None => format!("lapses {}", l.until),
        };
        let now = if l.in_force(g.as_of) {
            "in force"
        } else {
            "not in force"
        };
        out += &format!(
            "  list {:?} ({}) from {}, {end}: {now} on {}\n",
            l.list, l.domain, l.added.date, g.as_of
        );
    }
    out.trim_end().to_string()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the QR code carries: enough to fetch and re-check the same answer from any
/// node, or to match a printed page to its report file.
pub(crate) fn qr_payload(v: &VerifiedCredit, chain: &str, report_sha256: Option<&str>) -> String {
    let mut s = format!(
        "xinlian-credit:v1;chain={chain};uscc={};height={};header={};state={};grade={};rules={}",
        v.history.uscc, v.height, v.header_hash, v.state_hash, v.grade.grade, v.grade.rules_version
    );
    if let Some(d) = report_sha256 {
        s += &format!(";report={d}");
    }
    s
}

fn qr_svg(payload: &str) -> String {
    match qrcode::QrCode::new(payload.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(220, 220)
            .build(),
        // The payload is a few hundred bytes of ASCII, far within a QR code's capacity.
        Err(e) => format!("<p>QR: {}</p>", esc(&e.to_string())),
    }
}

/// The report as a page, in Chinese and English.
pub(crate) fn page(v: &VerifiedCredit, chain: &str, report_sha256: Option<&str>) -> String {
    let h = &v.history;
    let g = &v.grade;
    let mut rows = String::new();
    for r in g.reasons.iter().chain(&g.caps) {
        rows += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            esc(&r.rule),
            r.points,
            esc(&r.detail),
            r.record.map(|x| x.to_string()).unwrap_or_default()
        );
    }
    let mut commitments = String::new();
    for c in &h.commitments {
        commitments += &format!(
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            c.at.date,
            c.kind,
            esc(&c.matter),
            esc(&c.accepting_agency),
            esc(&status(c.status)),
            c.outcome
                .as_ref()
                .map(|o| format!("{} {}", o.at.date, esc(&o.document)))
                .unwrap_or_default()
        );
    }
    let mut lists = String::new();
    for l in &h.listings {
        lists += &format!(
            "<tr><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            l.list,
            l.added.date,
            l.removed
                .as_ref()
                .map(|(r, _)| r.date.to_string())
                .unwrap_or_else(|| format!("({})", l.until)),
            if l.in_force(g.as_of) {
                "在列 in force"
            } else {
                "不在列 not in force"
            }
        );
    }
    let payload = qr_payload(v, chain, report_sha256);
    format!(
        r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>专用信用报告 Credit report — {uscc}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}}table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}}.grade{{font-size:3rem;font-weight:bold}}code{{font-size:.75rem;word-break:break-all}}</style>
</head><body>
<h1>专用信用报告 <small>Special credit report</small></h1>
<p><b>{name}</b> — 统一社会信用代码 USCC <code>{uscc}</code></p>
<p class="grade" id="grade">{grade}</p>
<p>信用等级 grade {grade}，得分 score {score}，评级规则版本 rules version {version}，评价日期 as of {as_of}</p>
<p>本报告的每条记录均已对照创世文件验证：截至区块 {height} 的完整信用记录（无遗漏）。<br>
Every record was verified against the consortium's genesis: the complete credit record as of block {height}, none left out.</p>
<h2>评级依据 Reasons</h2>
<table><tr><th>规则 rule</th><th>分 points</th><th>说明 detail</th><th>记录 record</th></tr>
{rows}</table>
<h2>信用承诺 Commitments</h2>
<table><tr><th>日期 date</th><th>类型 kind</th><th>事项 matter</th><th>受理部门 agency</th><th>状态 status</th><th>结果 outcome</th></tr>
{commitments}</table>
<h2>名单 Lists</h2>
<table><tr><th>名单 list</th><th>列入 from</th><th>移出 until</th><th>{as_of}</th></tr>
{lists}</table>
<h2>核验 To re-check</h2>
<p>用 <code>xinlian verify</code> 核验报告文件，或扫码向任一节点重新取证。<br>
Check the report file with <code>xinlian verify FILE</code>, or scan the code and fetch the same answer from any node.</p>
<div id="qr">{qr}</div>
<p><code id="payload">{payload}</code></p>
<p>本报告证明：所列记录为截至该区块的全部信用记录，等级依当时生效的规则计算。它不证明该区块之后的记录，也不证明记录内容本身属实（由记录部门负责）。<br>
This report proves that these are all of the enterprise's credit records as of the block, graded under the rules then in force. It does not speak for records after that block, nor for the truth of what an agency recorded.</p>
</body></html>
"#,
        uscc = esc(h.uscc.as_str()),
        name = esc(&h.name),
        grade = g.grade,
        score = g.score,
        version = g.rules_version,
        as_of = g.as_of,
        height = v.height,
        qr = qr_svg(&payload),
        payload = esc(&payload),
    )
}

/// `xinlian verify` of a credit report file: checked as a fresh client from genesis.
pub(crate) fn verify_report(
    cli: &Cli,
    genesis: xinlian_client::genesis::Genesis,
    report: &CreditReport,
) -> Result<(), Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::Invalid(format!("verification failed: {e}"));
    let v = xinlian_client::proof::LightClient::verify_credit_report(genesis.clone(), report)
        .map_err(|e| failed(&e))?;
    print(cli.json, &v, || text(&v));
    Ok(())
}
