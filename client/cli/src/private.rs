//! `xinlian private`: a record's sealed text, sent to a node (`put`) or read back and
//! checked against the record, verified from genesis (`get`); docs/privacy.md.

use std::path::Path;

use xinlian_client::http::NodeClient;
use xinlian_client::private::{self, PrivateData};

use crate::verify::verify_online;
use crate::{Cli, Failure, local, parse_record_id, print, read_file, require_genesis};

/// Keeps private data that could not be sent in `ID.private.json`, readable by its
/// owner only (it is the text in clear); the file's name.
pub(crate) fn keep(data: &PrivateData) -> Result<String, Failure> {
    let file = format!("{}.private.json", data.record.to_hex());
    let json = serde_json::to_vec_pretty(data).expect("private data serialises");
    crate::write_atomically(Path::new(&file), &json)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| local(format!("{file}: {e}")))?;
    }
    Ok(file)
}

/// Sends the private data in `file` (as `xinlian submit` writes it when it cannot send it).
pub(crate) fn put(cli: &Cli, node: &NodeClient, file: &Path) -> Result<(), Failure> {
    let data: PrivateData = serde_json::from_str(&read_file(file)?)
        .map_err(|e| local(format!("{}: {e}", file.display())))?;
    let stored = node.put_private(&data)?;
    print(cli.json, &stored, || sent(&stored));
    Ok(())
}

fn sent(s: &xinlian_client::api::PrivateStored) -> String {
    match s.sending_to.as_slice() {
        [] => format!("private text of {} kept by this node", s.record),
        to => format!(
            "private text of {} kept by this node, being sent to {}",
            s.record,
            to.join(", ")
        ),
    }
}

/// Reads a record's private text (as an entitled reader: `--as`), having verified the
/// record from genesis, and checks the text against the record's commitments.
pub(crate) fn get(cli: &Cli, node: &NodeClient, id: &str) -> Result<(), Failure> {
    let id = parse_record_id(id)?;
    let (verified, _) = verify_online(cli, node, require_genesis(cli)?, &id)?;
    let data = node.private(&id)?;
    private::check(&verified.record, &data).map_err(|e| {
        Failure::Invalid(format!(
            "NOT VERIFIED: the node's private text for {id}: {e}"
        ))
    })?;
    print(cli.json, &data, || {
        let mut out = format!("VERIFIED private text of {id} against its commitments\n");
        for f in &data.fields {
            out += &format!("{}: {}\n", f.field, f.text);
        }
        out.trim_end().to_string()
    });
    Ok(())
}

/// After a submission: sends the sealed text of the final record `data.record`, or, if
/// that fails, keeps it in `<id>.private.json` (without it the text is lost: only its
/// commitment is on the ledger) and says how to send it.
pub(crate) fn send_after_submit(
    node: &NodeClient,
    key: &xinlian_client::genesis::keys::SigningKey,
    data: &PrivateData,
) -> Result<String, Failure> {
    // Sent as the record's signer (`key:HEX`), who is entitled to read it.
    let as_signer = node
        .unsigned()
        .signed_by(xinlian_client::http::RequestSigner::for_key(key.clone()));
    match as_signer.put_private(data) {
        Ok(s) => Ok(sent(&s)),
        Err(e) => {
            let file = keep(data)?;
            Err(Failure::Invalid(format!(
                "the record is final but its private text was not sent ({e}); it is kept in {file}: send it with `xinlian private put {file}`"
            )))
        }
    }
}
