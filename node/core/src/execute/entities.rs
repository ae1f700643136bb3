//! Enterprises and their keys: a registrar registers an enterprise with its first key;
//! a registrar or the enterprise itself rotates or revokes it. One key per enterprise
//! is accepted at a time, and no key is ever both an enterprise's and a member's: a
//! key that was a member's in any roster, or was named for one by any proposal, is
//! never bindable. (That the enterprise holds the key is checked statelessly: its
//! proof of possession, `xinlian_client::checks::check_possession`.)

use xinlian_client::ids::Uscc;
use xinlian_client::record::{RegisterEntity, RevokeEntityKey, RotateEntityKey};
use xinlian_client::state::{self as st, key};
use xinlian_genesis::PublicKey;

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

/// A key is bindable to an enterprise only if it never was, nor was named to be, a
/// member's, and was never bound before (bindings stay after revocation).
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
    Ok(())
}

fn revoke_key(s: &mut Overlay, k: &PublicKey, height: u64) -> Ex {
    let mut kb: st::KeyBinding = need(s.get(&key::key_binding(k))?, "key binding", k)?;
    kb.revoked_at = Some(height);
    s.put(key::key_binding(k), &kb);
    Ok(())
}
