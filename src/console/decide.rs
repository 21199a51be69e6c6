//! The console's one writing action: an approver's decision, signed in their browser
//! (WebCrypto Ed25519, with the key file they pick; the private key never reaches the
//! node), checked here and handed to the node's approval desk like `isogate approve` does.
//!
//! ```text
//!  browser: sign(message(decision, digest)) ─► POST /api/decision
//!           {id, decision, signature (128 hex), note, csrf}
//!  check ─► the object waits? (approvals::read) ─► the channel's pinned approvers
//!        ─► the approver whose key verifies the signature (each pinned key tried)
//!        ─► none: refused here, audited approval_request_refused
//!        ─► approvals::submit(via "console:USER") ─► await_answer ─► the node's answer
//! ```
//!
//! The node checks everything again when it takes the request (it is the desk's and the
//! audit log's one writer); this check only gives the approver a clear answer at once.

use crate::audit::{Entry, Event};
use crate::core::approval::{Decision, Rule};
use crate::core::id::ObjectId;
use crate::node::Node;
use crate::node::approvals::{self, DecisionAnswer, DecisionRequest, MAX_NOTE};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long the console waits for the node's answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The body of `POST /api/decision`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Posted {
    /// Object id, 32 hex digits.
    pub id: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Ed25519 signature over `approval::message(decision, digest)`, 128 hex digits.
    pub signature: String,
    /// The approver's note.
    #[serde(default)]
    pub note: String,
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
    /// The approver's public key, 64 hex digits (optional: found from the signature).
    #[serde(default)]
    pub key: String,
}

/// The answer, as JSON: the node's, or the console's refusal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// Whether the node took the decision.
    pub taken: bool,
    /// What happened, in one sentence.
    pub message: String,
    /// The approver the signature names, when found.
    pub approver: String,
    /// Approvals the object has now.
    pub approved: usize,
    /// Approvals it needs.
    pub required: usize,
    /// Whether the object left the desk (released or rejected).
    pub done: bool,
}

fn refused(status: u16, message: impl Into<String>) -> Answer {
    Answer {
        status,
        taken: false,
        message: message.into(),
        approver: String::new(),
        approved: 0,
        required: 0,
        done: false,
    }
}

/// The pinned approver whose key verifies `signature` for `decision` on `digest`. When the
/// request names a key (`claimed`, 64 hex digits, any case), only the approver pinned with
/// that key may be the signer: a signature by another pinned approver is no match.
pub fn signer<'a>(
    rule: &'a Rule,
    decision: Decision,
    digest: &[u8; 32],
    signature: &[u8],
    claimed: Option<&str>,
) -> Option<&'a crate::core::approval::Approver> {
    rule.approvers
        .iter()
        .filter(|a| claimed.is_none_or(|k| a.key.to_hex().eq_ignore_ascii_case(k)))
        .find(|a| Rule::verifies(a, decision, digest, signature))
}

/// Checks a posted decision of console user `user` and hands it to the node; waits up to
/// [`ANSWER_WAIT`] for the answer. (The CSRF token is checked by the caller.)
pub fn decide(node: &Node, user: &str, p: &Posted, wait: Duration) -> Answer {
    let Some(decision) = Decision::parse(&p.decision) else {
        return refused(400, "decision: approve or reject");
    };
    if ObjectId::parse(&p.id).is_none() {
        return refused(400, "id: 32 hex digits");
    }
    let mut sig = [0u8; 64];
    if hex::decode_to_slice(&p.signature, &mut sig).is_err() {
        return refused(400, "signature: 128 hex digits");
    }
    let mut key = [0u8; 32];
    if !p.key.is_empty() && hex::decode_to_slice(&p.key, &mut key).is_err() {
        return refused(400, "key: 64 hex digits, or none");
    }
    let claimed = (!p.key.is_empty()).then_some(p.key.as_str());
    let state = &node.cfg.node.state_dir;
    let view = match approvals::read(state, &p.id) {
        Ok(Some(v)) => v,
        Ok(None) => return refused(404, format!("object {} is not waiting for approval", p.id)),
        Err(e) => return refused(500, format!("the pending object cannot be read: {e}")),
    };
    let mut digest = [0u8; 32];
    if hex::decode_to_slice(&view.digest, &mut digest).is_err() {
        return refused(500, "the pending object's digest is not 64 hex digits");
    }
    let policy = node.policies.get(&view.channel);
    let Some(rule) = policy.approval.as_ref() else {
        return refused(
            409,
            format!("channel {} has no [approval] section", view.channel),
        );
    };
    let Some(approver) = signer(rule, decision, &digest, &sig, claimed) else {
        let why = match claimed {
            Some(k) => format!(
                "console:{user}: the signature of this {} is not by the key it names ({}) among the pinned approvers of channel {}",
                decision.as_str(),
                k.to_ascii_lowercase(),
                view.channel
            ),
            None => format!(
                "console:{user}: the signature of this {} matches no pinned approver of channel {} (wrong key file, or signed for another object)",
                decision.as_str(),
                view.channel
            ),
        };
        // the browser signs with Ed25519 only: an approver pinned with an SM2 key (a pair on
        // the national suite) signs with the command
        let why = if rule
            .approvers
            .iter()
            .any(|a| a.key.suite() != crate::keys::suite::Suite::Default)
        {
            format!(
                "{why}; approvers pinned with SM2 keys sign with `isogate approve` (the browser's WebCrypto has no SM2)"
            )
        } else {
            why
        };
        if let Some(id) = ObjectId::parse(&view.id) {
            let _ = node.audit.append(
                Event::ApprovalRequestRefused,
                Entry {
                    detail: Some(why.clone()),
                    ..Entry::object(&view.channel, id, &view.name)
                },
            );
        }
        return refused(403, why);
    };
    let request = DecisionRequest {
        id: view.id.clone(),
        decision: decision.as_str().to_string(),
        digest: view.digest.clone(),
        key: approver.key.to_hex(),
        signature: p.signature.to_ascii_lowercase(),
        note: p.note.chars().take(MAX_NOTE).collect(),
        via: format!("console:{user}"),
    };
    let path = match approvals::submit(state, &request) {
        Ok(p) => p,
        Err(e) => {
            return refused(
                503,
                format!("the node's approval desk cannot be reached: {e}"),
            );
        }
    };
    match approvals::await_answer(&path, wait) {
        Ok(Some(DecisionAnswer {
            taken,
            message,
            approved,
            required,
            done,
        })) => Answer {
            // a decision the desk refused (already decided, approving twice…) is the
            // client's to change: 409, with the desk's counts
            status: if taken { 200 } else { 409 },
            taken,
            message,
            approver: approver.name.clone(),
            approved,
            required,
            done,
        },
        Ok(None) => {
            let mut a = refused(
                504,
                "the node did not answer in time; the request stays with its desk",
            );
            a.approver = approver.name.clone();
            a
        }
        Err(e) => refused(500, format!("the node's answer cannot be read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::approval::{Approver, try_sign};
    use crate::keys::SigningKey;

    #[test]
    fn the_signer_is_found_by_trying_each_pinned_key() {
        let k1 = SigningKey::from_seed(&[1; 32]).unwrap();
        let k2 = SigningKey::from_seed(&[2; 32]).unwrap();
        let k3 = SigningKey::from_seed(&[3; 32]).unwrap();
        let rule = Rule {
            required: 2,
            approvers: vec![
                Approver {
                    name: "张伟".into(),
                    key: k1.verify_key(),
                    level: 1,
                },
                Approver {
                    name: "li.na".into(),
                    key: k2.verify_key(),
                    level: 1,
                },
            ],
            expire_ms: 1000,
        };
        let d = [7u8; 32];
        let s = try_sign(&k2, Decision::Approve, &d).unwrap();
        assert_eq!(
            signer(&rule, Decision::Approve, &d, &s, None).unwrap().name,
            "li.na"
        );
        let k2hex = k2.verify_key().to_hex().to_ascii_uppercase();
        assert_eq!(
            signer(&rule, Decision::Approve, &d, &s, Some(&k2hex))
                .unwrap()
                .name,
            "li.na",
            "the key it names signed"
        );
        let k1hex = k1.verify_key().to_hex();
        assert!(
            signer(&rule, Decision::Approve, &d, &s, Some(&k1hex)).is_none(),
            "names 张伟's key, signed by li.na's: refused"
        );
        assert!(
            signer(&rule, Decision::Approve, &d, &s, Some(&"00".repeat(32))).is_none(),
            "names a key not pinned"
        );
        assert!(
            signer(&rule, Decision::Reject, &d, &s, None).is_none(),
            "the decision is signed"
        );
        assert!(
            signer(&rule, Decision::Approve, &[8u8; 32], &s, None).is_none(),
            "another object"
        );
        let s3 = try_sign(&k3, Decision::Approve, &d).unwrap();
        assert!(
            signer(&rule, Decision::Approve, &d, &s3, None).is_none(),
            "not pinned"
        );
    }
}
