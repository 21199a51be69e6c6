//! Release approval by several officers: what an approver signs, and the count that
//! decides whether an object may leave (on the sender) or may land (on the receiver, with
//! its own pinned list of approvers).
//!
//! ```text
//!  signed manifest body ─► digest (SHA-256 of the body, RFC 6234; SM3 under `gm`)
//!  approver's key ─sign─► message(decision, digest) ─► Approval { approver, signature }
//!  Rule { required, approvers (name, Ed25519 or SM2 key, level), expire_ms }
//!     tally(digest, approvals)  ─► Tally: who signed, how many more, which levels wait
//!     check(digest, approvals)  ─► Ok(approvers) | ApprovalError (missing, forged, unknown)
//!     may_approve(approver, tally) ─► levels in order: department before security office
//! ```
//!
//! An approval is an Ed25519 signature (SM2 on a `gm` pair, 64 bytes either way) over
//! `CONTEXT || decision || 0x00 || digest`, where
//! the decision is `approve` or `reject` and the digest is the hash of the manifest body
//! the sending node signed (SHA-256, or SM3 on a `gm` pair). The body names the object id, channel,
//! name, size and the hash (SHA-256, or SM3 under `gm`) of the whole content and of every
//! chunk, so an approval covers exactly those
//! bytes and nothing else. Only approvals travel (in the signed manifest's envelope,
//! `manifest.rs`); a rejection stays on the sending node, in its audit log.
//!
//! Levels: each approver has a level (1 when none is given). When the approvers carry more
//! than one level, an object needs `required` distinct approvers AND at least one from every
//! level, and the sending node takes a level's approval only once every lower level has one.

use crate::keys::suite::Suite;
use crate::keys::{SigningKey, VerifyKey};
use thiserror::Error;

/// Domain separation of approval signatures.
pub const CONTEXT: &[u8] = b"isogate approval v1\0";
/// Most approvals one manifest carries.
pub const MAX_APPROVALS: usize = 16;
/// Longest approver name, in bytes.
pub const MAX_APPROVER_NAME: usize = 64;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// What an approver decided about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The object may leave.
    Approve,
    /// The object must not leave: it goes to quarantine (`approval_rejected`).
    Reject,
}

impl Decision {
    /// The word signed and written in requests: `approve` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    /// Parses `approve` or `reject`.
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "approve" => Some(Decision::Approve),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }
}

/// The digest an approver signs: the pair's hash of the signed manifest body (SHA-256, or
/// SM3 under `gm`; 32 bytes either way).
pub fn digest(suite: Suite, body: &[u8]) -> [u8; 32] {
    crate::keys::suite::digest(suite, body)
}

/// The exact bytes an approver signs for `decision` on the object whose manifest body
/// has `digest`: `CONTEXT || decision || 0x00 || digest` (this is what a browser signs too).
pub fn message(decision: Decision, digest: &[u8; 32]) -> Vec<u8> {
    let d = decision.as_str().as_bytes();
    let mut m = Vec::with_capacity(CONTEXT.len() + d.len() + 1 + 32);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(d);
    m.push(0);
    m.extend_from_slice(digest);
    m
}

/// Why a decision could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignError {
    /// The signer returned a signature of another length than Ed25519's 64 bytes (never
    /// with ring's Ed25519; said rather than padded).
    #[error("the signature is {0} bytes, not the {SIGNATURE_LEN} of Ed25519")]
    Length(usize),
}

/// Signs a decision with an approver's key (RFC 8032 Ed25519 over [`message`]); the
/// 64-byte signature.
///
/// # Errors
/// [`SignError::Length`]: the signer's output is not 64 bytes (the bytes are never padded).
pub fn try_sign(
    key: &SigningKey,
    decision: Decision,
    digest: &[u8; 32],
) -> Result<[u8; SIGNATURE_LEN], SignError> {
    let sig = key.sign(&message(decision, digest));
    <[u8; SIGNATURE_LEN]>::try_from(sig.as_slice()).map_err(|_| SignError::Length(sig.len()))
}

/// One approval as it travels: who (by name in the pinned list) and their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The approver's name (at most `MAX_APPROVER_NAME` bytes of UTF-8).
    pub approver: String,
    /// Ed25519 signature over `message(Approve, digest)`.
    pub signature: [u8; SIGNATURE_LEN],
}

/// One approver in a channel's pinned list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Name, unique in the list ([`valid_name`]).
    pub name: String,
    /// Their Ed25519 public key.
    pub key: VerifyKey,
    /// Level, from 1 (first to sign, e.g. the department) upward (e.g. the security office).
    pub level: u8,
}

/// A channel's approval rule (`[approval]` in its policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Distinct approvers needed.
    pub required: usize,
    /// The pinned approvers.
    pub approvers: Vec<Approver>,
    /// How long an object may wait for its approvals, in ms, before it is quarantined as
    /// `approval_expired`.
    pub expire_ms: u64,
}

/// Why a set of approvals does not let an object through.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApprovalError {
    /// An approval names no approver in the pinned list.
    #[error("approval by {0:?}, who is not a pinned approver")]
    Unknown(String),
    /// An approval's signature does not verify with the named approver's pinned key.
    #[error(
        "approval by {0:?} does not verify with their pinned key (forged, or for another object)"
    )]
    Forged(String),
    /// The same approver appears twice.
    #[error("approver {0:?} appears twice")]
    Duplicate(String),
    /// Fewer distinct approvals than required.
    #[error("{have} of {need} approvals")]
    TooFew {
        /// Valid distinct approvals present.
        have: usize,
        /// Approvals required.
        need: usize,
    },
    /// A level has no approval.
    #[error("no approval at level {0}")]
    LevelMissing(u8),
}

/// Where an object stands with its approvals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<'a> {
    /// The approvers whose approval verified, in the order given.
    pub approved: Vec<&'a Approver>,
    /// Levels with no approval yet, lowest first (empty when levels are not used).
    pub levels_missing: Vec<u8>,
    /// Approvals still needed (distinct approvers).
    pub more: usize,
}

impl Tally<'_> {
    /// Whether the object may go: enough distinct approvers and every level covered.
    pub fn complete(&self) -> bool {
        self.more == 0 && self.levels_missing.is_empty()
    }
}

impl Rule {
    /// The approver of a name.
    pub fn approver(&self, name: &str) -> Option<&Approver> {
        self.approvers.iter().find(|a| a.name == name)
    }

    /// The approver whose public key this is.
    pub fn approver_by_key(&self, key: &VerifyKey) -> Option<&Approver> {
        self.approvers.iter().find(|a| &a.key == key)
    }

    /// The distinct levels of the approvers, lowest first; empty when all share one.
    pub fn levels(&self) -> Vec<u8> {
        let mut l: Vec<u8> = self.approvers.iter().map(|a| a.level).collect();
        l.sort_unstable();
        l.dedup();
        if l.len() < 2 { Vec::new() } else { l }
    }

    /// Whether one signature is a valid decision of `approver` on `digest`.
    pub fn verifies(
        approver: &Approver,
        decision: Decision,
        digest: &[u8; 32],
        signature: &[u8],
    ) -> bool {
        approver.key.verify(&message(decision, digest), signature)
    }

    /// Counts a set of approvals: each must name a pinned approver, verify, and appear once.
    ///
    /// # Errors
    /// The first approval that is unknown, forged or repeated.
    pub fn tally<'a>(
        &'a self,
        digest: &[u8; 32],
        approvals: &[Approval],
    ) -> Result<Tally<'a>, ApprovalError> {
        let mut approved: Vec<&Approver> = Vec::new();
        for a in approvals {
            let who = self
                .approver(&a.approver)
                .ok_or_else(|| ApprovalError::Unknown(a.approver.clone()))?;
            if !Rule::verifies(who, Decision::Approve, digest, &a.signature) {
                return Err(ApprovalError::Forged(a.approver.clone()));
            }
            if approved.iter().any(|x| x.name == who.name) {
                return Err(ApprovalError::Duplicate(a.approver.clone()));
            }
            approved.push(who);
        }
        let levels_missing = self
            .levels()
            .into_iter()
            .filter(|l| !approved.iter().any(|a| a.level == *l))
            .collect();
        let more = self.required.saturating_sub(approved.len());
        Ok(Tally {
            approved,
            levels_missing,
            more,
        })
    }

    /// Checks that a set of approvals lets the object through (the receiver's check, and
    /// the sender's before release).
    ///
    /// # Errors
    /// An unknown, forged or repeated approval; too few; a level with none.
    pub fn check<'a>(
        &'a self,
        digest: &[u8; 32],
        approvals: &[Approval],
    ) -> Result<Vec<&'a Approver>, ApprovalError> {
        let t = self.tally(digest, approvals)?;
        if t.more > 0 {
            return Err(ApprovalError::TooFew {
                have: t.approved.len(),
                need: self.required,
            });
        }
        if let Some(l) = t.levels_missing.first() {
            return Err(ApprovalError::LevelMissing(*l));
        }
        Ok(t.approved)
    }

    /// Whether `approver` may approve now, given what is approved already: levels sign in
    /// order, so a level waits until every lower level has an approval.
    ///
    /// # Errors
    /// [`SignOrder`]: why not (approved already, or a lower level first).
    pub fn may_approve(&self, approver: &Approver, tally: &Tally<'_>) -> Result<(), SignOrder> {
        if tally.approved.iter().any(|a| a.name == approver.name) {
            return Err(SignOrder::Already(approver.name.clone()));
        }
        if let Some(lower) = tally.levels_missing.iter().find(|l| **l < approver.level) {
            return Err(SignOrder::LowerFirst {
                lower: *lower,
                approver: approver.name.clone(),
                level: approver.level,
            });
        }
        Ok(())
    }
}

/// Why an approver may not approve now ([`Rule::may_approve`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignOrder {
    /// This approver's approval is counted already.
    #[error("{0} has approved it already")]
    Already(String),
    /// A lower level has no approval yet: levels sign in order.
    #[error("level {lower} approves first; {approver} is level {level}")]
    LowerFirst {
        /// The lowest level still without an approval.
        lower: u8,
        /// The approver who asked.
        approver: String,
        /// Their level.
        level: u8,
    },
}

/// Whether a name may name an approver: 1 to `MAX_APPROVER_NAME` bytes of letters and
/// digits of any script (张伟, zhang.wei), '-', '_' and '.'.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_APPROVER_NAME
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32]).unwrap()
    }

    fn rule(levels: &[u8], required: usize) -> Rule {
        Rule {
            required,
            approvers: levels
                .iter()
                .enumerate()
                .map(|(i, l)| Approver {
                    name: format!("a{i}"),
                    key: key(i as u8 + 1).verify_key(),
                    level: *l,
                })
                .collect(),
            expire_ms: 1000,
        }
    }

    fn approval(i: u8, d: &[u8; 32]) -> Approval {
        Approval {
            approver: format!("a{i}"),
            signature: try_sign(&key(i + 1), Decision::Approve, d).unwrap(),
        }
    }

    #[test]
    fn two_distinct_approvals_pass_one_does_not() {
        let r = rule(&[1, 1, 1], 2);
        let d = digest(Suite::Default, b"body");
        assert_eq!(
            r.check(&d, &[approval(0, &d)]),
            Err(ApprovalError::TooFew { have: 1, need: 2 })
        );
        let ok = r.check(&d, &[approval(0, &d), approval(2, &d)]).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(
            r.check(&d, &[approval(0, &d), approval(0, &d)]),
            Err(ApprovalError::Duplicate("a0".into()))
        );
    }

    #[test]
    fn forged_unknown_rejection_and_other_object_refused() {
        let r = rule(&[1, 1], 1);
        let d = digest(Suite::Default, b"body");
        let other = digest(Suite::Default, b"other body");
        assert_eq!(
            r.check(&d, &[approval(0, &other)]),
            Err(ApprovalError::Forged("a0".into()))
        );
        // a0's name on a1's signature
        let mut swapped = approval(1, &d);
        swapped.approver = "a0".into();
        assert_eq!(
            r.check(&d, &[swapped]),
            Err(ApprovalError::Forged("a0".into()))
        );
        let stranger = Approval {
            approver: "mallory".into(),
            signature: try_sign(&key(9), Decision::Approve, &d).unwrap(),
        };
        assert_eq!(
            r.check(&d, &[stranger]),
            Err(ApprovalError::Unknown("mallory".into()))
        );
        // a signed rejection is never an approval
        let rejected = Approval {
            approver: "a0".into(),
            signature: try_sign(&key(1), Decision::Reject, &d).unwrap(),
        };
        assert_eq!(
            r.check(&d, &[rejected]),
            Err(ApprovalError::Forged("a0".into()))
        );
        assert!(Rule::verifies(
            &r.approvers[0],
            Decision::Reject,
            &d,
            &try_sign(&key(1), Decision::Reject, &d).unwrap()
        ));
    }

    #[test]
    fn levels_need_one_each_and_sign_in_order() {
        // a0, a1 department (1); a2 security office (2); two required
        let r = rule(&[1, 1, 2], 2);
        let d = digest(Suite::Default, b"body");
        assert_eq!(
            r.check(&d, &[approval(0, &d), approval(1, &d)]),
            Err(ApprovalError::LevelMissing(2))
        );
        assert!(r.check(&d, &[approval(0, &d), approval(2, &d)]).is_ok());
        let none = r.tally(&d, &[]).unwrap();
        assert_eq!(none.levels_missing, vec![1, 2]);
        let waits = r.may_approve(&r.approvers[2], &none);
        assert_eq!(
            waits,
            Err(SignOrder::LowerFirst {
                lower: 1,
                approver: r.approvers[2].name.clone(),
                level: 2
            }),
            "level 2 waits"
        );
        // its message
        assert_eq!(
            r.may_approve(&r.approvers[2], &none)
                .map_err(|e| e.to_string()),
            Err(format!(
                "level 1 approves first; {} is level 2",
                r.approvers[2].name
            ))
        );
        assert!(r.may_approve(&r.approvers[0], &none).is_ok());
        let one = r.tally(&d, &[approval(0, &d)]).unwrap();
        assert!(r.may_approve(&r.approvers[2], &one).is_ok());
        assert_eq!(
            r.may_approve(&r.approvers[0], &one),
            Err(SignOrder::Already(r.approvers[0].name.clone())),
            "twice"
        );
        assert_eq!(
            r.may_approve(&r.approvers[0], &one)
                .map_err(|e| e.to_string()),
            Err(format!("{} has approved it already", r.approvers[0].name))
        );
        assert!(!one.complete());
        assert!(
            r.tally(&d, &[approval(0, &d), approval(2, &d)])
                .unwrap()
                .complete()
        );
    }

    #[test]
    fn a_signature_is_the_full_64_bytes_and_verifies() {
        let d = digest(Suite::Default, b"body");
        let sig = try_sign(&key(3), Decision::Approve, &d).unwrap();
        assert_ne!(sig, [0u8; SIGNATURE_LEN]);
        assert!(
            key(3)
                .verify_key()
                .verify(&message(Decision::Approve, &d), &sig)
        );
    }

    #[test]
    fn the_signed_message_is_fixed() {
        let d = [7u8; 32];
        let m = message(Decision::Approve, &d);
        assert_eq!(&m[..CONTEXT.len()], CONTEXT);
        assert_eq!(&m[CONTEXT.len()..CONTEXT.len() + 8], b"approve\0");
        assert_eq!(&m[CONTEXT.len() + 8..], &d);
        assert!(valid_name("zhang.wei-1"));
        assert!(valid_name("张伟"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a\u{202e}b"));
        assert!(!valid_name(""));
    }
}
