//! `xinlian governance …`: proposals and votes as signed records, and the proposals
//! with their tallies as the node derives them (docs/governance.md).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use xinlian_genesis::{Member, Policy, PublicKey, Role};

use crate::key::{chain, possession_proofs};
use crate::{Cli, Failure, local, parse_record_id, print, submit_body};
use xinlian_client::api::ProposalView;
use xinlian_client::crypto::KeyHolder;
use xinlian_client::governance::Status;
use xinlian_client::http::NodeClient;
use xinlian_client::record::{Change, Proposal, Vote};

#[derive(Subcommand)]
pub enum GovernanceCmd {
    /// Propose a change, signed with a member's key (a proposer with a vote approves).
    Propose(Box<ProposeArgs>),
    /// Approve or reject an open proposal, signed with a voting member's key.
    Vote {
        /// The proposal: its propose record's id.
        proposal: String,
        #[arg(long)]
        key: PathBuf,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        wait: bool,
    },
    /// Proposals, newest first, with tallies: open, passed, rejected, expired.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One proposal with its ballots.
    Show { proposal: String },
    /// The roster in force at the next height.
    Roster,
}

#[derive(Args)]
pub struct ProposeArgs {
    #[arg(long)]
    key: PathBuf,
    /// Why: kept on the ledger with the proposal.
    #[arg(long)]
    reason: String,
    /// The last height at which votes count (default: the tip + --voting-blocks).
    #[arg(long)]
    deadline: Option<u64>,
    #[arg(long, default_value_t = 300)]
    voting_blocks: u64,
    /// The height from which a passed change is in force (default: the deadline + 10).
    #[arg(long)]
    effective: Option<u64>,
    /// The file of a key the change names (an added member's signing and node keys, a
    /// rotated key; repeatable): the member's proof of possession is made with it.
    #[arg(long = "new-key", value_name = "FILE")]
    new_keys: Vec<PathBuf>,
    /// A proof of possession made elsewhere (`xinlian key possession --member ID`), for
    /// each named key no --new-key file holds, in order: signing key, then node key.
    #[arg(long, value_name = "HEX")]
    possession: Vec<String>,
    #[arg(long)]
    wait: bool,
    #[command(subcommand)]
    change: ChangeCmd,
}

#[derive(Subcommand)]
pub enum ChangeCmd {
    /// Admit a member (an agency or a region) with its roles and keys.
    AddMember {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Administrative division code (GB/T 2260), e.g. 320000.
        #[arg(long)]
        region: String,
        /// Comma-separated: validator, observer, registrar, credit-authority:D, trace-authority:D.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long, default_value_t = 0)]
        power: u64,
        /// The node's public key (validators and observers).
        #[arg(long)]
        node_key: Option<String>,
        #[arg(long)]
        signing_key: String,
    },
    RemoveMember {
        member: String,
    },
    /// Replace a member's roles and voting power.
    SetRoles {
        member: String,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long, default_value_t = 0)]
        power: u64,
    },
    RotateNodeKey {
        member: String,
        key: String,
    },
    RotateSigningKey {
        member: String,
        key: String,
    },
    /// Replace the policy with the one in FILE (TOML or JSON, every field given).
    SetPolicy {
        file: PathBuf,
    },
}

fn key(text: &str, what: &str) -> Result<PublicKey, Failure> {
    PublicKey::from_hex(text.trim())
        .map_err(|e| local(format!("{what}: expected 64 hex digits ({e})")))
}

fn roles(texts: &[String]) -> Result<Vec<Role>, Failure> {
    texts
        .iter()
        .map(|r| Role::parse(r).map_err(local))
        .collect()
}

fn change(cmd: &ChangeCmd) -> Result<Change, Failure> {
    Ok(match cmd {
        ChangeCmd::AddMember {
            id,
            name,
            region,
            roles: r,
            power,
            node_key,
            signing_key,
        } => Change::AddMember(Member {
            id: id.clone(),
            name: name.clone(),
            region: region.clone(),
            roles: roles(r)?,
            voting_power: *power,
            node_key: node_key
                .as_deref()
                .map(|k| key(k, "--node-key"))
                .transpose()?,
            signing_key: key(signing_key, "--signing-key")?,
        }),
        ChangeCmd::RemoveMember { member } => Change::RemoveMember {
            member: member.clone(),
        },
        ChangeCmd::SetRoles {
            member,
            roles: r,
            power,
        } => Change::SetRoles {
            member: member.clone(),
            roles: roles(r)?,
            voting_power: *power,
        },
        ChangeCmd::RotateNodeKey { member, key: k } => Change::RotateNodeKey {
            member: member.clone(),
            key: key(k, "key")?,
        },
        ChangeCmd::RotateSigningKey { member, key: k } => Change::RotateSigningKey {
            member: member.clone(),
            key: key(k, "key")?,
        },
        ChangeCmd::SetPolicy { file } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| local(format!("{}: {e}", file.display())))?;
            let policy: Policy = if file.extension().is_some_and(|e| e == "toml") {
                toml::from_str(&text).map_err(|e| local(format!("{}: {e}", file.display())))?
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| local(format!("{}: {e}", file.display())))?
            };
            Change::SetPolicy(policy)
        }
    })
}

fn line(v: &ProposalView) -> String {
    let p = &v.proposal;
    format!(
        "{}  {:<11} {}\n    proposed by {} at {}; votes until {}; in force from {}\n    approve {} / reject {} of {} (needs more than {:.1})",
        p.id,
        v.status.name(),
        v.summary,
        p.proposer,
        p.proposed_at,
        p.deadline,
        p.effective,
        v.approve_power,
        v.reject_power,
        v.total_power,
        v.total_power as f64 * 2.0 / 3.0
    )
}

pub fn run(cli: &Cli, node: &NodeClient, cmd: &GovernanceCmd) -> Result<(), Failure> {
    match cmd {
        GovernanceCmd::Propose(a) => {
            let deadline = match a.deadline {
                Some(d) => d,
                None => node.status()?.height + a.voting_blocks,
            };
            let change = change(&a.change)?;
            let named: Vec<_> = (change.named_keys().into_iter())
                .map(|(k, m)| (k, KeyHolder::Member(m)))
                .collect();
            let possession =
                possession_proofs(&chain(cli, node)?, &named, &a.new_keys, &a.possession)?;
            let body = Proposal {
                change,
                reason: a.reason.clone(),
                deadline,
                effective: a.effective.unwrap_or(deadline + 10),
                possession,
            };
            submit_body(cli, node, &a.key, body.into(), a.wait)
        }
        GovernanceCmd::Vote {
            proposal,
            key,
            approve,
            reject: _,
            wait,
        } => {
            let body = Vote {
                proposal: parse_record_id(proposal)?,
                approve: *approve,
            };
            submit_body(cli, node, key, body.into(), *wait)
        }
        GovernanceCmd::List { status, limit } => {
            if let Some(s) = status
                && Status::from_name(s).is_none()
            {
                return Err(local(format!(
                    "--status {s}: one of open, passed, rejected, expired, not_applied"
                )));
            }
            let mut list = node.proposals(status.as_deref())?;
            list.proposals.truncate(*limit);
            print(cli.json, &list, || {
                let mut out = format!(
                    "{} proposals as of height {}",
                    list.proposals.len(),
                    list.height
                );
                for v in &list.proposals {
                    out.push('\n');
                    out.push_str(&line(v));
                }
                out
            });
            Ok(())
        }
        GovernanceCmd::Show { proposal } => {
            let v = node.proposal(&parse_record_id(proposal)?)?;
            print(cli.json, &v, || {
                let mut out = line(&v);
                for b in &v.proposal.ballots {
                    out.push_str(&format!(
                        "\n    {} {} (power {}) at {} by {}",
                        b.member,
                        if b.approve { "approves" } else { "rejects" },
                        b.power,
                        b.height,
                        b.record
                    ));
                }
                out
            });
            Ok(())
        }
        GovernanceCmd::Roster => {
            let r = node.roster()?;
            print(cli.json, &r, || {
                let mut out = format!("roster {} in force since height {}", r.hash, r.since);
                for m in &r.roster.members {
                    let roles: Vec<String> = m.roles.iter().map(|x| x.to_string()).collect();
                    out.push_str(&format!(
                        "\n  {:<16} {:<8} power {:<3} {}",
                        m.id,
                        m.region,
                        m.voting_power,
                        roles.join(", ")
                    ));
                }
                out
            });
            Ok(())
        }
    }
}
