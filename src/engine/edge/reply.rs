//! Why an edge step failed ([`EdgeError`]), and what an edge agent makes of the answers it
//! waits for: the answer or why there was none, a
//! problem report's text, a DID Exchange response's signed rotation, a peer DID's service.

use std::time::Instant;

use super::Shared;
use super::inbox::{Arrival, Waiter};
use crate::didcomm::did_doc::resolve_didcomm_services;
use crate::didcomm::incoming::Message;
use crate::didcomm::jws::verify_did_rotate;
use crate::didcomm::messages::{DidexResponse, ProblemReport};

/// Why an edge step failed: `reason` groups failures, `detail` is the example.
#[derive(Debug, Clone)]
pub struct EdgeError {
    pub reason: String,
    pub detail: String,
    /// Nothing was sent (a template, a missing connection, a bad invitation): a failure of
    /// the step, never a sample.
    pub unsent: bool,
}

impl EdgeError {
    pub fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        EdgeError {
            reason: reason.into(),
            detail: detail.into(),
            unsent: false,
        }
    }

    /// A failure before anything went on the wire.
    pub fn unsent(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        EdgeError {
            unsent: true,
            ..EdgeError::new(reason, detail)
        }
    }
}

pub(super) fn err(reason: &str) -> impl FnOnce(crate::didcomm::DidcommError) -> EdgeError + '_ {
    move |e| EdgeError::new(reason, e.to_string())
}

/// The answer a wait got, or why it got none. A wait that runs out while the socket was
/// down at some moment of it failed because of that, not because the mediator was slow.
pub(super) async fn answer(
    shared: &Shared,
    waiter: Waiter,
    deadline: Instant,
    what: &str,
) -> Result<Arrival, EdgeError> {
    let since = Instant::now();
    match tokio::time::timeout_at(deadline.into(), waiter).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(_)) => Err(EdgeError::new(
            "socket closed",
            shared
                .inbox
                .closed()
                .unwrap_or_else(|| "the socket task ended".into()),
        )),
        Err(_) => Err(match shared.down_during(since, Instant::now()) {
            Some(outage) => EdgeError::new(
                format!("no {what}: the socket to the mediator dropped"),
                outage,
            ),
            None => EdgeError::new(
                format!("no {what} in time"),
                format!(
                    "none within {} ({})",
                    crate::plan::duration::format(deadline.saturating_duration_since(since)),
                    if shared.opened.load(std::sync::atomic::Ordering::Relaxed) {
                        "the socket stayed up"
                    } else {
                        "asked by HTTP; no socket open yet"
                    }
                ),
            ),
        }),
    }
}

/// A problem report's text, for a failure reason.
pub(super) fn problem(p: &ProblemReport) -> EdgeError {
    let text = p
        .description
        .as_ref()
        .and_then(|d| d.get("en").and_then(|e| e.as_str()).map(str::to_owned))
        .or_else(|| p.explain.clone())
        .or_else(|| p.problem_code.clone())
        .unwrap_or_else(|| "(no description)".into());
    let code = p
        .description
        .as_ref()
        .and_then(|d| d.get("code").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_default();
    EdgeError::new(
        format!("problem report {code}").trim().to_string(),
        text.chars().take(200).collect::<String>(),
    )
}

pub(super) fn unexpected(what: &str, a: &Arrival) -> EdgeError {
    match &a.message {
        Message::ProblemReport(p) => problem(p),
        _ => EdgeError::new(
            format!("unexpected answer instead of {what}"),
            a.header.type_.clone(),
        ),
    }
}

/// A DID Exchange response must carry `did_rotate~attach`, signed by the invitation key
/// `signer`, over the DID it answers with.
pub(super) fn check_rotation(response: &DidexResponse, signer: &str) -> Result<(), EdgeError> {
    let attach = response
        .did_rotate_attach
        .as_ref()
        .ok_or_else(|| EdgeError::new("DID Exchange response without did_rotate~attach", ""))?;
    let signed = verify_did_rotate(attach, Some(signer))
        .map_err(err("DID Exchange response signature invalid"))?;
    if signed != response.did {
        return Err(EdgeError::new(
            "DID Exchange response signs another DID",
            signed,
        ));
    }
    Ok(())
}

/// The best `did-communication` service of a peer DID.
pub(super) fn first_service(
    did: &str,
) -> Result<crate::didcomm::did_doc::DidcommService, EdgeError> {
    resolve_didcomm_services(did)
        .map_err(err("cannot resolve the peer DID"))?
        .into_iter()
        .next()
        .ok_or_else(|| EdgeError::new("peer DID has no DIDComm service", ""))
}

/// The responder's best service from a DID Exchange response: its DID signed in
/// `did_rotate~attach` by the invitation key `signer` (a resolvable DID), or — as Credo
/// answers a did:peer:1 request — its did:peer:1 doc in `did_doc~attach`, signed by the doc's
/// own key or the invitation key (what Credo accepts).
pub(super) fn responder_service(
    response: &DidexResponse,
    signer: &str,
) -> Result<crate::didcomm::did_doc::DidcommService, EdgeError> {
    let (None, Some(attach)) = (&response.did_rotate_attach, &response.did_doc_attach) else {
        check_rotation(response, signer)?;
        return first_service(&response.did);
    };
    let signed = crate::didcomm::jws::verify_attachment(attach)
        .map_err(err("DID Exchange response doc signature invalid"))?;
    let doc: serde_json::Value = serde_json::from_slice(&signed.payload)
        .map_err(|e| EdgeError::new("DID Exchange response doc is not JSON", e.to_string()))?;
    let service = crate::didcomm::did_doc::didcomm_services(&doc)
        .map_err(err("bad DID Exchange response doc"))?
        .into_iter()
        .next()
        .ok_or_else(|| EdgeError::new("peer DID has no DIDComm service", ""))?;
    if signed.signer_verkey != signer && !service.recipient_keys.contains(&signed.signer_verkey) {
        return Err(EdgeError::new(
            "DID Exchange response doc signed by another key",
            signed.signer_verkey,
        ));
    }
    Ok(service)
}
