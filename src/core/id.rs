//! The one object identifier of the whole gateway: 128 random bits, chosen by the sending
//! node when it takes an object, carried in the signed manifest, the diode's records, the
//! receipts, the audit log and every file name that belongs to the object.

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// A 128-bit random object identifier, shown as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 16]);

/// The system's random generator failed: no identifier can be made.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("system random generator failed")]
pub struct RandomError;

impl ObjectId {
    /// A fresh random id from the system's generator.
    ///
    /// # Errors
    /// [`RandomError`] when the generator fails.
    pub fn random() -> Result<ObjectId, RandomError> {
        let mut b = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
            .map_err(|_| RandomError)?;
        Ok(ObjectId(b))
    }

    /// Parses exactly 32 hex digits; `None` for anything else.
    pub fn parse(s: &str) -> Option<ObjectId> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(ObjectId(b))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        let id = ObjectId::random().unwrap();
        assert_eq!(ObjectId::parse(&id.to_string()), Some(id));
        assert_eq!(ObjectId::parse("zz"), None);
        assert_eq!(ObjectId::parse(&"a".repeat(31)), None);
        assert_eq!(ObjectId([0xab; 16]).to_string(), "ab".repeat(16));
    }
}
