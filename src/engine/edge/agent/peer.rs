//! An edge agent's DID Exchange with another edge agent through the mediator: an invitation
//! on a new routed key, answering one, and waiting for the answer to ours.

use std::time::{Duration, Instant};

use super::{EdgeAgent, EdgeError, OpenInvitation, Via};
use crate::didcomm::decorators::Thread;
use crate::didcomm::did_doc::PeerInputDoc;
use crate::didcomm::incoming::Message;
use crate::didcomm::jws::sign_did_rotate;
use crate::didcomm::keys::KeyPair;
use crate::didcomm::messages::{DidexComplete, DidexRequest, DidexResponse, KeylistAction};
use crate::didcomm::oob::Invitation;
use crate::engine::edge::PeerLink;
use crate::engine::edge::inbox::Match;
use crate::engine::edge::reply::{answer, check_rotation, err, first_service, unexpected};

impl EdgeAgent {
    /// A new invitation key, routed through the mediator, in an out-of-band invitation.
    pub async fn invite(&mut self, timeout: Duration) -> Result<Invitation, EdgeError> {
        let grant = self.grant()?.clone();
        let key = KeyPair::generate().map_err(err("key generation failed"))?;
        self.shared.add_key(&key);
        self.hub.register(key.verkey(), &self.shared);
        self.keylist_update(&key.did_key(), KeylistAction::Add, timeout)
            .await?;
        let invitation = Invitation::new_inline(
            self.profile.label.clone(),
            crate::didcomm::did_key::url_from_public(key.public_bytes()),
            grant.routing_keys,
            grant.endpoint,
        );
        self.invitation = Some(OpenInvitation {
            id: invitation.id.clone(),
            key,
        });
        Ok(invitation)
    }

    /// Answers an invitation: a new key (registered), our did:peer:4 routed through the
    /// mediator, the request forwarded to the inviter, its response verified, complete sent.
    pub async fn accept_invitation(
        &mut self,
        invitation: &Invitation,
        timeout: Duration,
    ) -> Result<(), EdgeError> {
        let deadline = Instant::now() + timeout;
        let grant = self.grant()?.clone();
        let service = invitation
            .inline_service()
            .ok_or_else(|| EdgeError::new("peer invitation has no inline service", ""))?;
        let inviter = service.target().map_err(err("bad peer invitation"))?;
        let invitation_key = inviter
            .recipient_keys
            .first()
            .cloned()
            .ok_or_else(|| EdgeError::new("peer invitation has no recipient key", ""))?;
        let key = KeyPair::generate().map_err(err("key generation failed"))?;
        self.shared.add_key(&key);
        self.hub.register(key.verkey(), &self.shared);
        self.keylist_update(key.verkey(), KeylistAction::Add, timeout)
            .await?;
        let did = PeerInputDoc::credo(&key.public_key(), &grant.endpoint, &grant.routing_keys)
            .to_did_peer_4()
            .map_err(err("cannot encode did:peer:4"))?;
        let mut request = DidexRequest::new(did.long, self.profile.label.clone(), &invitation.id);
        request.transport = None;
        let thid = request.id.clone();
        let a = self
            .ask(
                &request,
                vec![Match::Thread(thid.clone())],
                Via::Routed(&inviter, &key),
                deadline,
                "DID Exchange response from the peer",
            )
            .await?;
        let Message::DidexResponse(response) = &a.message else {
            return Err(unexpected("the DID Exchange response", &a));
        };
        check_rotation(response, invitation_key.verkey())?;
        let their = first_service(&response.did)?
            .target()
            .map_err(err("bad peer DID"))?;
        let complete = DidexComplete::new(Thread {
            thid: Some(thid),
            pthid: Some(invitation.id.clone()),
        });
        self.send(&complete, Via::Routed(&their, &key)).await?;
        self.set_peer(PeerLink { my_key: key, their });
        Ok(())
    }

    /// Waits for the request answering our invitation; responds with a did:peer:4 on the
    /// invitation key (a single-use inline invitation, as Credo); waits for complete.
    pub async fn await_connection(&mut self, timeout: Duration) -> Result<(), EdgeError> {
        let deadline = Instant::now() + timeout;
        let grant = self.grant()?.clone();
        let Some(open) = self.invitation.take() else {
            return Err(EdgeError::new(
                "no invitation to wait on",
                "`invite` must come before this step",
            ));
        };
        let waiter = self.expect(vec![Match::Parent(open.id.clone())])?;
        let a = answer(
            &self.shared,
            waiter,
            deadline,
            "DID Exchange request from the peer",
        )
        .await?;
        let Message::DidexRequest(request) = &a.message else {
            return Err(unexpected("the DID Exchange request", &a));
        };
        let their = first_service(&request.did)?
            .target()
            .map_err(err("bad peer DID"))?;
        let did = PeerInputDoc::credo(&open.key.public_key(), &grant.endpoint, &grant.routing_keys)
            .to_did_peer_4()
            .map_err(err("cannot encode did:peer:4"))?;
        let attach = sign_did_rotate(&did.long, &open.key).map_err(err("cannot sign"))?;
        let thid = a.header.thid().to_owned();
        let response = DidexResponse::new(
            did.long,
            Thread {
                thid: Some(thid.clone()),
                pthid: Some(open.id.clone()),
            },
            attach,
        );
        let a = self
            .ask(
                &response,
                vec![Match::Thread(thid)],
                Via::Routed(&their, &open.key),
                deadline,
                "DID Exchange complete from the peer",
            )
            .await?;
        if !matches!(a.message, Message::DidexComplete(_)) {
            return Err(unexpected("DID Exchange complete", &a));
        }
        self.set_peer(PeerLink {
            my_key: open.key,
            their,
        });
        Ok(())
    }

    fn set_peer(&mut self, link: PeerLink) {
        if let Ok(mut p) = self.shared.peer.lock() {
            *p = Some(link.clone());
        }
        self.peer = Some(link);
    }
}
