//! `xinlian-genesis`: create a consortium's keys and genesis, or check a genesis file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xinlian_genesis::scaffold::{MemberSpec, scaffold};
use xinlian_genesis::{Genesis, Policy, Role, model::format_time_ms};

#[derive(Parser)]
#[command(
    version,
    about = "Create and validate xinlian consortium genesis files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate keys and a genesis.toml for N validators (plus observers) in DIR.
    New {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value_t = 0)]
        observers: usize,
        #[arg(long, default_value = "xinlian-local")]
        chain_id: String,
        #[arg(long, default_value = "consortium")]
        out: PathBuf,
    },
    /// Validate a genesis file; print its chain hash and validator set.
    Validate { file: PathBuf },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::New {
            validators,
            observers,
            chain_id,
            out,
        } => {
            anyhow::ensure!(validators >= 1, "a consortium needs at least one validator");
            let mut specs = Vec::new();
            for i in 0..validators + observers {
                let mut roles = vec![if i < validators {
                    Role::Validator
                } else {
                    Role::Observer
                }];
                if i == 0 {
                    roles.push(Role::Registrar);
                    roles.push(Role::CreditAuthority("general".into()));
                    roles.push(Role::TraceAuthority("general".into()));
                }
                specs.push(MemberSpec {
                    id: format!("member-{i}"),
                    name: format!("Member {i}"),
                    region: "310000".into(),
                    roles,
                    voting_power: u64::from(i < validators),
                });
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("clock before 1970")?
                .as_millis() as i64;
            let g = scaffold(&out, &chain_id, now_ms, Policy::default(), &specs)?;
            let key_files =
                g.members.len() + g.members.iter().filter(|m| m.node_key.is_some()).count();
            println!(
                "wrote {} (chain {}) and {key_files} key files under {}",
                out.join("genesis.toml").display(),
                g.hash(),
                out.join("keys").display()
            );
            Ok(())
        }
        Command::Validate { file } => {
            let g = Genesis::load(&file)?;
            let vs = g.validator_set();
            println!("valid genesis: chain_id {} hash {}", g.chain_id, g.hash());
            println!("genesis time {}", format_time_ms(g.genesis_time_ms));
            println!(
                "{} members, {} validators, total voting power {}",
                g.members.len(),
                vs.len(),
                vs.total_power()
            );
            for m in &g.members {
                let roles: Vec<String> = m.roles.iter().map(Role::to_string).collect();
                println!(
                    "  {:<24} power {:<3} {}",
                    m.id,
                    m.voting_power,
                    roles.join(", ")
                );
            }
            Ok(())
        }
    }
}
