//! Enterprises and their keys: a registrar registers an enterprise with its first key;
//! a registrar or the enterprise itself rotates or revokes it. One key per enterprise
//! is accepted at a time, and no key is ever both an enterprise's and a member's: a
//! key that was a member's in any roster, or was named for one by any proposal, is
//! never bindable. (That the enterprise holds the key is checked statelessly: its
//! proof of possession, `xinlian_client::checks::check_possession`.)

use xinlian_client::ids::Uscc;
use xinlian_client::record::{
    BindCustodyKey, RegisterEntity, RevokeCustodyKey, RevokeEntityKey, RotateEntityKey,
};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::PublicKey;
use xinlian_genesis::TraceField;

use super::{Ex, Exec, Found, Rejection, entity, need, reject};
use crate::consortium::Consortium;
use crate::governance::member_key_owner;
use crate::overlay::Overlay;

pub(super) fn register(s: &mut Overlay, x: &Exec, b: &RegisterEntity) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    if s.get_raw(&key::entity(&b.uscc))?.is_some() {
        return reject(Rejection::AlreadyExists {
            what: "enterprise",
            id: b.uscc.to_string(),
        });
    }
    key_is_free(s, x.c, &b.key)?;
    s.put(
        key::entity(&b.uscc),
        &st::Entity {
            uscc: b.uscc.clone(),
            name: b.name.clone(),
            key: Some(b.key),
            registered_by: x.member().id.clone(),
            registered_at: x.ctx.height,
            check_override: b.check_override.clone(),
        },
    );
    bind(s, x, &b.uscc, b.key);
    if b.operator.is_some() {
        s.put(key::operator(&x.id), &b.uscc);
    }
    s.put(key::credit(&b.uscc), &st::CreditState::new(b.uscc.clone()));
    Ok(vec![b.uscc.clone()])
}

pub(super) fn rotate(s: &mut Overlay, x: &Exec, b: &RotateEntityKey) -> Ex<Vec<Uscc>> {
    let mut e = entity(s, &b.uscc)?;
    x.authorise(Found::Nothing)?;
    key_is_free(s, x.c, &b.new_key)?;
    if let Some(old) = e.key {
        revoke_key(s, &old, x.ctx.height)?;
    }
    e.key = Some(b.new_key);
    bind(s, x, &b.uscc, b.new_key);
    s.put(key::entity(&b.uscc), &e);
    Ok(vec![b.uscc.clone()])
}

pub(super) fn revoke(s: &mut Overlay, x: &Exec, b: &RevokeEntityKey) -> Ex<Vec<Uscc>> {
    let mut e = entity(s, &b.uscc)?;
    x.authorise(Found::Nothing)?;
    let Some(old) = e.key else {
        return reject(Rejection::WrongState {
            what: "enterprise key",
            reason: format!("{} has no key to revoke", b.uscc),
        });
    };
    revoke_key(s, &old, x.ctx.height)?;
    e.key = None;
    s.put(key::entity(&b.uscc), &e);
    Ok(vec![b.uscc.clone()])
}

/// A registrar binds a custody key for a domain whose policy hides counterparties. The
/// enterprise is sealed, so execution cannot tell which it is (nor keep one key per
/// enterprise and domain): the registrar answers for it, as for every registration.
pub(super) fn bind_custody_key(s: &mut Overlay, x: &Exec, b: &BindCustodyKey) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    if !(x.c.policy().trace).hides(&b.domain, TraceField::Counterparty) {
        return reject(Rejection::WrongState {
            what: "custody key",
            reason: format!(
                "domain {} does not hide counterparties (policy.trace): its parties are named by USCC",
                b.domain
            ),
        });
    }
    key_is_free(s, x.c, &b.key)?;
    s.put(
        key::custody_key(&b.key),
        &st::CustodyKey {
            domain: b.domain.clone(),
            bound_at: x.ctx.height,
            bound_by: x.id,
            registrar: x.member().id.clone(),
            revoked_at: None,
        },
    );
    Ok(Vec::new())
}

/// A registrar revokes a custody key: the key signs nothing more, and what it holds
/// stays held under it (a successor key cannot take it over: docs/privacy.md).
pub(super) fn revoke_custody_key(s: &mut Overlay, x: &Exec, b: &RevokeCustodyKey) -> Ex<Vec<Uscc>> {
    x.authorise(Found::Nothing)?;
    let mut ck: st::CustodyKey = need(s.get(&key::custody_key(&b.key))?, "custody key", b.key)?;
    if let Some(h) = ck.revoked_at {
        return reject(Rejection::WrongState {
            what: "custody key",
            reason: format!("{} was already revoked at height {h}", b.key),
        });
    }
    ck.revoked_at = Some(x.ctx.height);
    s.put(key::custody_key(&b.key), &ck);
    Ok(Vec::new())
}

/// Binds `k` to `u` from this record on.
fn bind(s: &mut Overlay, x: &Exec, u: &Uscc, k: PublicKey) {
    s.put(
        key::key_binding(&k),
        &st::KeyBinding {
            uscc: u.clone(),
            bound_at: x.ctx.height,
            bound_by: x.id,
            revoked_at: None,
        },
    );
}

/// A key is bindable to an enterprise, or as a custody key, only if it never was, nor
/// was named to be, a member's, and was never bound before either way (bindings stay
/// after revocation).
fn key_is_free(s: &Overlay, c: &Consortium, k: &PublicKey) -> Ex {
    if let Some(member) = member_key_owner(s, c, k)? {
        return reject(Rejection::MemberKey { key: *k, member });
    }
    if let Some(kb) = s.get::<st::KeyBinding>(&key::key_binding(k))? {
        return reject(Rejection::AlreadyExists {
            what: "key binding",
            id: format!("{k} (bound to {})", kb.uscc),
        });
    }
    if let Some(ck) = s.get::<st::CustodyKey>(&key::custody_key(k))? {
        // Said without the enterprise, which the refused signer may not know.
        return reject(Rejection::AlreadyExists {
            what: "key binding",
            id: format!("{k} (a custody key for domain {})", ck.domain),
        });
    }
    Ok(())
}

fn revoke_key(s: &mut Overlay, k: &PublicKey, height: u64) -> Ex {
    let mut kb: st::KeyBinding = need(s.get(&key::key_binding(k))?, "key binding", k)?;
    kb.revoked_at = Some(height);
    s.put(key::key_binding(k), &kb);
    Ok(())
}
