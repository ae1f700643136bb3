//! `xinlian key …`: writing a new key file and showing a key file's public key.

use std::path::PathBuf;

use clap::Subcommand;
use xinlian_client::genesis::keys;

use crate::{Cli, Failure, local, print};

#[derive(Subcommand)]
pub(crate) enum KeyCmd {
    /// Write a new key (readable by its owner only) and print its public key.
    New { file: PathBuf },
    /// Print a key file's public key.
    Show { file: PathBuf },
}

pub(crate) fn run(cli: &Cli, cmd: &KeyCmd) -> Result<(), Failure> {
    let pk = match cmd {
        KeyCmd::New { file } => {
            if file.exists() {
                return Err(local(format!(
                    "{} exists; not overwriting a key",
                    file.display()
                )));
            }
            let k = keys::generate().map_err(local)?;
            keys::write_pem(file, &k).map_err(local)?;
            keys::public_key(&k)
        }
        KeyCmd::Show { file } => keys::public_key(&keys::read_pem(file).map_err(local)?),
    };
    print(cli.json, &serde_json::json!({ "public_key": pk }), || {
        format!("{pk}")
    });
    Ok(())
}
