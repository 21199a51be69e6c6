//! Where a channel's antivirus listens: the clamd address a policy names, parsed and
//! shown in the one form the configuration uses. The client itself is `inspect::clamd`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where clamd listens: `"unix:/path/clamd.sock"` or `"tcp:host:port"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdAddr {
    /// A Unix socket, by absolute path (clamd's `LocalSocket`).
    Unix(PathBuf),
    /// A TCP address as `host:port`; an IPv6 host is written in brackets (`[::1]:3310`).
    Tcp(String),
}

impl FromStr for ClamdAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ClamdAddr, String> {
        const FORMS: &str = "a clamd address is \"unix:/path/to/clamd.sock\" or \"tcp:host:port\"";
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("{s:?}: the socket path is empty; {FORMS}"));
            }
            if !path.starts_with('/') {
                return Err(format!("{s:?}: the socket path must be absolute; {FORMS}"));
            }
            return Ok(ClamdAddr::Unix(PathBuf::from(path)));
        }
        if let Some(host_port) = s.strip_prefix("tcp:") {
            let Some((host, port)) = host_port.rsplit_once(':') else {
                return Err(format!("{s:?}: the port is missing; {FORMS}"));
            };
            if host.is_empty() || host.chars().any(char::is_whitespace) {
                return Err(format!("{s:?}: the host is empty or has spaces; {FORMS}"));
            }
            if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
                return Err(format!(
                    "{s:?}: an IPv6 host goes in brackets, as in \"tcp:[::1]:3310\""
                ));
            }
            match port.parse::<u16>() {
                Ok(p) if p != 0 => return Ok(ClamdAddr::Tcp(host_port.to_string())),
                _ => {
                    return Err(format!(
                        "{s:?}: the port {port:?} is not a number from 1 to 65535; {FORMS}"
                    ));
                }
            }
        }
        Err(format!("{s:?}: {FORMS}"))
    }
}

impl fmt::Display for ClamdAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ClamdAddr::Tcp(host_port) => write!(f, "tcp:{host_port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_round_trip_and_bad_ones_are_explained() {
        for s in [
            "unix:/run/clamav/clamd.ctl",
            "tcp:127.0.0.1:3310",
            "tcp:[::1]:3310",
        ] {
            assert_eq!(s.parse::<ClamdAddr>().unwrap().to_string(), s);
        }
        for bad in [
            "unix:",
            "unix:rel",
            "tcp:host",
            "tcp::1:3310",
            "tcp:h:0",
            "http://x",
        ] {
            assert!(bad.parse::<ClamdAddr>().is_err(), "{bad}");
        }
    }
}
