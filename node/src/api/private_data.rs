//! `POST /v1/private` and `GET /v1/records/{id}/private`: records' sealed text in and
//! out (docs/privacy.md § Private data). Taking it in is `crate::private`'s; these
//! handlers add HTTP and who is asking.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Json;
use xinlian_client::api::PrivateStored;
use xinlian_client::disclosure::Reader;
use xinlian_client::state::{self as st, key};

use super::{
    ApiResult, ApiState, P, disclosed_missing, err, not_visible, parse_id, read_body,
    storage_failed,
};
use crate::audience::View;
use crate::host::Shared;

/// `POST /v1/private`: a final record's private data, from a reader entitled to it (the
/// submitter signs with its record's key: `key:HEX`), checked against the record and
/// kept if this node's member is entitled to it, then pushed to the other entitled
/// members' nodes. The reader's entitlement is settled first, so that no other answer
/// (not final, erased, mismatch) tells anyone else anything about the record.
pub(super) async fn put_private(
    State(st): State<ApiState>,
    Extension(reader): Extension<Reader>,
    req: Request,
) -> ApiResult<PrivateStored> {
    let body = read_body(req, xinlian_client::private::DATA_BYTES_MAX).await?;
    let data: xinlian_client::private::PrivateData = serde_json::from_slice(&body)
        .map_err(|e| err(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    entitled(&st.shared, &reader, &data.record)?;
    let (s, store, d) = (st.shared.clone(), st.shared.private.clone(), data.clone());
    let taken = tokio::task::spawn_blocking(move || crate::private::take_in(&s, &store, &d))
        .await
        .map_err(|_| storage_failed())?;
    let targets = taken.map_err(|r| {
        let status = match r.code {
            "not_final" => StatusCode::CONFLICT,
            "erased" => StatusCode::GONE,
            "not_entitled" => StatusCode::FORBIDDEN,
            "private_mismatch" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        err(status, r.code, r.message)
    })?;
    let record = data.record;
    let sending_to = targets.iter().map(|(m, _)| m.clone()).collect();
    let to = targets.into_iter().map(|(_, k)| k).collect();
    st.desk
        .try_send(crate::private::DeskMsg::Send { data, to })
        .map_err(|_| {
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "kept here, but the push to the other members' nodes is queued full; send it again",
            )
            .retry_after(1)
        })?;
    Ok(Json(PrivateStored { record, sending_to }))
}

/// Refuses a reader who may not read the record (as a missing one, to whoever may not
/// know it exists) or its private data.
fn entitled(
    s: &Shared,
    reader: &Reader,
    id: &xinlian_client::record::RecordId,
) -> Result<(), super::ApiFailure> {
    let Some((_, index)) = s.store.locate(id)? else {
        return Err(disclosed_missing(reader, id));
    };
    let record = s.store.record_at(index)?.ok_or_else(storage_failed)?;
    let view = View::new(s, reader)?;
    if !view.admits(&record, false)? {
        return Err(not_visible(reader, id));
    }
    if !view.private_audience(&record)?.admits(reader, view.today) {
        return Err(err(
            StatusCode::FORBIDDEN,
            "not_entitled",
            format!(
                "the private data of {id} is not disclosed to {}",
                reader.label()
            ),
        ));
    }
    Ok(())
}

/// `GET /v1/records/{id}/private`: the record's private data, to a reader entitled to
/// it (the record's readers, never the public); `410 erased` once an erasure decision
/// purged it. The reader checks it against the record it verified.
pub(super) async fn record_private(
    State(s): State<Shared>,
    Extension(reader): Extension<Reader>,
    P(id): P<String>,
) -> ApiResult<xinlian_client::private::PrivateData> {
    let id = parse_id(&id)?;
    entitled(&s, &reader, &id)?;
    if let Some(e) = s
        .store
        .state_value::<st::ErasureState>(&key::erasure(&id))?
    {
        return Err(err(
            StatusCode::GONE,
            "erased",
            format!(
                "the private data of {id} was erased by decision {} on {} (block {}); the record and its commitment remain",
                e.erase, e.date, e.height
            ),
        ));
    }
    let store = s.private.clone();
    let data = tokio::task::spawn_blocking(move || store.get(&id))
        .await
        .map_err(|_| storage_failed())?
        .map_err(|e| {
            tracing::error!(error = %e, "private-data store");
            storage_failed()
        })?;
    data.map(Json).ok_or_else(|| {
        err(
            StatusCode::NOT_FOUND,
            "private_missing",
            format!(
                "this node holds no private data for {id}: it has not arrived here, or was never sent; ask another entitled member's node"
            ),
        )
    })
}
