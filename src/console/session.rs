//! Console sessions: a random 256-bit token in an HttpOnly, SameSite=Strict cookie names a
//! session; each session carries its own CSRF token, required on every POST. A session
//! unused for the idle timeout ends; logout ends it at once. Time is passed in (ms on the
//! process's monotonic clock), so expiry is tested without waiting.
//!
//! ```text
//!  login ok ─► open(user, now) ─► (token ─► Set-Cookie, csrf ─► hidden field / page)
//!  request  ─► touch(token, now) ─► Some(Session) (idle clock restarted) | None ─► 401
//!  POST     ─► csrf_ok(session, field) ─► constant-time compare
//!  logout   ─► close(token)
//! ```
//!
//! At most [`MAX_SESSIONS`] live at once; opening one more ends the longest idle.

use std::collections::HashMap;

/// Most sessions held at once.
pub const MAX_SESSIONS: usize = 1024;
/// Name of the session cookie.
pub const COOKIE: &str = "isogate_session";

/// One logged-in officer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user name from the password file.
    pub user: String,
    /// The CSRF token (64 hex digits) every POST of this session must carry.
    pub csrf: String,
    /// When it was last used (monotonic ms).
    last_ms: u64,
}

/// The system's random generator failed: no token can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("system random generator failed")]
pub struct RandomError;

/// 256 random bits as 64 hex digits.
pub fn token() -> Result<String, RandomError> {
    let mut b = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| RandomError)?;
    Ok(hex::encode(b))
}

/// Compares two strings in time that depends on their lengths only.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    idle_ms: u64,
    live: HashMap<String, Session>,
}

impl Sessions {
    /// No sessions yet; each ends after `idle_ms` without use.
    pub fn new(idle_ms: u64) -> Sessions {
        Sessions {
            idle_ms,
            live: HashMap::new(),
        }
    }

    /// Opens a session for `user` at `now_ms`; returns its cookie token and the session.
    ///
    /// # Errors
    /// The random generator failed.
    pub fn open(&mut self, user: &str, now_ms: u64) -> Result<(String, Session), RandomError> {
        self.expire(now_ms);
        if self.live.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .live
                .iter()
                .min_by_key(|(_, s)| s.last_ms)
                .map(|(t, _)| t.clone())
        {
            self.live.remove(&oldest);
        }
        let t = token()?;
        let s = Session {
            user: user.to_string(),
            csrf: token()?,
            last_ms: now_ms,
        };
        self.live.insert(t.clone(), s.clone());
        Ok((t, s))
    }

    /// The session of a cookie token, its idle clock restarted; `None` if there is none or
    /// it has been idle for the timeout.
    pub fn touch(&mut self, token: &str, now_ms: u64) -> Option<Session> {
        let idle = self.idle_ms;
        let s = self.live.get_mut(token)?;
        if now_ms.saturating_sub(s.last_ms) >= idle {
            self.live.remove(token);
            return None;
        }
        s.last_ms = now_ms;
        Some(s.clone())
    }

    /// Ends a session (logout).
    pub fn close(&mut self, token: &str) {
        self.live.remove(token);
    }

    /// Sessions live now.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether none is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn expire(&mut self, now_ms: u64) {
        let idle = self.idle_ms;
        self.live
            .retain(|_, s| now_ms.saturating_sub(s.last_ms) < idle);
    }
}

/// Whether a POST's CSRF field is its session's token.
pub fn csrf_ok(session: &Session, given: &str) -> bool {
    !given.is_empty() && same(&session.csrf, given)
}

/// The value of the cookie `name` in a `Cookie` header, if present.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_after_idle_time_or_logout() {
        let mut s = Sessions::new(1000);
        let (t, sess) = s.open("officer", 10).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(sess.csrf.len(), 64);
        assert_ne!(t, sess.csrf);
        assert_eq!(s.touch(&t, 900).unwrap().user, "officer");
        // used at 900: still live at 1899, idle from then on
        assert!(s.touch(&t, 1899).is_some());
        assert!(s.touch(&t, 2899).is_none(), "idle for the timeout");
        assert!(s.touch(&t, 2900).is_none(), "and gone");
        let (t2, _) = s.open("officer", 3000).unwrap();
        s.close(&t2);
        assert!(s.touch(&t2, 3001).is_none());
        assert!(s.touch("", 3001).is_none());
    }

    #[test]
    fn csrf_and_cookies() {
        let mut s = Sessions::new(1000);
        let (_, sess) = s.open("officer", 0).unwrap();
        assert!(csrf_ok(&sess, &sess.csrf.clone()));
        assert!(!csrf_ok(&sess, ""));
        assert!(!csrf_ok(&sess, &"0".repeat(64)));
        assert!(!csrf_ok(&sess, &sess.csrf[..63]));
        assert_eq!(
            cookie("lang=zh; isogate_session=abc; x=1", COOKIE),
            Some("abc")
        );
        assert_eq!(cookie("lang=zh", COOKIE), None);
    }

    #[test]
    fn sessions_are_bounded() {
        let mut s = Sessions::new(u64::MAX);
        let (first, _) = s.open("a", 0).unwrap();
        for i in 1..=MAX_SESSIONS as u64 {
            s.open("a", i).unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(s.touch(&first, 5000).is_none(), "the longest idle went");
    }
}
