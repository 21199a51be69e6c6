//! What the two ends of a diode must agree on, and how a receiver finds out that they
//! do not. The link negotiates nothing (nothing ever goes back), so the sender states its
//! settings in every heartbeat ([`LinkParams`]) and the receiver compares them with its
//! own: a datagram longer than its MTU allows, a block larger than it accepts, or another
//! channel list would otherwise be dropped without a word. A receiver that hears
//! heartbeats but none of the symbols they account for is told too: the path's MTU is
//! below the configured one (small datagrams pass, full-size ones do not).
//!
//! ```text
//!  sender settings ─► heartbeat(mtu, T, K, digest) ═══► receiver: check(local, params)
//!                                                        │
//!   mtu > ours ─► Mtu   T too long ─► SymbolSize   K·T too big ─► BlockSize
//!   digest ≠ ours ─► Config     (heartbeats, seq gaps, no symbol) ─► NoData
//! ```
//!
//! The configuration digest is SHA-256 (FIPS 180-4) over a length-prefixed list of the
//! diode channels the pair carries, cut to [`CONFIG_DIGEST_LEN`] bytes: both nodes load
//! the same channel list, so both compute the same digest for the channels that cross
//! from the sender to the receiver.

use super::wire::{self, CONFIG_DIGEST_LEN, LinkParams, SYMBOL_OVERHEAD};

/// One diode channel as it enters the configuration digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelSpec<'a> {
    /// Channel name.
    pub name: &'a str,
    /// Kind (`files`, …).
    pub kind: &'a str,
    /// Zone it comes from.
    pub from: &'a str,
    /// Zone it goes to.
    pub to: &'a str,
}

/// The digest of the settings both ends must share: the protocol version and the
/// channels (in any order; each field length-prefixed, big-endian u32), SHA-256 cut to
/// 16 bytes.
pub fn config_digest(channels: &[ChannelSpec<'_>]) -> [u8; CONFIG_DIGEST_LEN] {
    let mut lines: Vec<Vec<u8>> = channels
        .iter()
        .map(|c| {
            let mut line = Vec::new();
            for field in [c.name, c.kind, c.from, c.to] {
                let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
                line.extend_from_slice(&len.to_be_bytes());
                line.extend_from_slice(field.as_bytes());
            }
            line
        })
        .collect();
    lines.sort();
    lines.dedup();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"isogate diode config\n");
    ctx.update(&[wire::VERSION]);
    for l in &lines {
        ctx.update(l);
    }
    let full = ctx.finish();
    let mut out = [0u8; CONFIG_DIGEST_LEN];
    out.copy_from_slice(&full.as_ref()[..CONFIG_DIGEST_LEN]);
    out
}

/// The receiver's own settings that the sender's must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// The receiver's configured IPv4 MTU (bytes).
    pub mtu: usize,
    /// The largest block (K·T bytes) it accepts.
    pub max_block_bytes: usize,
    /// Its configuration digest.
    pub config_digest: [u8; CONFIG_DIGEST_LEN],
}

/// One way the two ends disagree. Each names the sender's value and the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mismatch {
    /// The sender's MTU is larger than the receiver's: its full-size datagrams are
    /// dropped as too long.
    Mtu {
        /// The sender's MTU.
        sender: u32,
        /// The receiver's MTU.
        receiver: usize,
    },
    /// The MTUs agree, but the sender's symbol datagrams are longer than the
    /// receiver's MTU allows.
    SymbolSize {
        /// The sender's symbol size.
        sender: u16,
        /// The largest symbol size the receiver takes.
        largest: usize,
    },
    /// The sender's full blocks are larger than the receiver accepts.
    BlockSize {
        /// K·T of the sender (bytes).
        sender: usize,
        /// The receiver's limit (bytes).
        largest: usize,
    },
    /// The two nodes carry different diode channels (or speak another version).
    Config {
        /// The sender's digest.
        sender: [u8; CONFIG_DIGEST_LEN],
        /// The receiver's digest.
        receiver: [u8; CONFIG_DIGEST_LEN],
    },
    /// Heartbeats arrive but none of the symbols sent between them: the path drops
    /// full-size datagrams (its MTU is below the configured one).
    NoData {
        /// The sender's MTU, if its heartbeats say.
        sender: Option<u32>,
        /// The receiver's MTU.
        receiver: usize,
        /// Datagrams missed since the last symbol that arrived.
        missed: u64,
    },
}

impl Mismatch {
    /// Every reason code, for metrics made at 0.
    pub const REASONS: [&'static str; 5] =
        ["mtu", "symbol_size", "block_size", "config", "no_data"];

    /// The stable reason code (a metric label and an audit field).
    pub fn reason(&self) -> &'static str {
        match self {
            Mismatch::Mtu { .. } => "mtu",
            Mismatch::SymbolSize { .. } => "symbol_size",
            Mismatch::BlockSize { .. } => "block_size",
            Mismatch::Config { .. } => "config",
            Mismatch::NoData { .. } => "no_data",
        }
    }
}

fn hex8(d: &[u8; CONFIG_DIGEST_LEN]) -> String {
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Mtu { sender, receiver } => write!(
                f,
                "the sender's mtu = {sender} exceeds this receiver's mtu = {receiver}: its full-size datagrams are dropped as too long (set the same mtu on both nodes)"
            ),
            Mismatch::SymbolSize { sender, largest } => write!(
                f,
                "the sender's symbol size {sender} exceeds the {largest} this receiver's mtu allows: its symbols are dropped as too long"
            ),
            Mismatch::BlockSize { sender, largest } => write!(
                f,
                "the sender's blocks of {sender} bytes exceed the {largest} this receiver accepts"
            ),
            Mismatch::Config { sender, receiver } => write!(
                f,
                "the sender's configuration digest {} differs from this receiver's {}: the two nodes carry different diode channels or versions",
                hex8(sender),
                hex8(receiver)
            ),
            Mismatch::NoData {
                sender,
                receiver,
                missed,
            } => {
                write!(
                    f,
                    "heartbeats arrive but no data ({missed} datagrams missed since the last symbol): path MTU below mtu = "
                )?;
                match sender {
                    Some(s) => write!(f, "{s} (sender; this receiver: {receiver})?"),
                    None => write!(f, "{receiver}?"),
                }?;
                f.write_str(" set mtu on both nodes to the smallest MTU on the path")
            }
        }
    }
}

/// Every way the sender's `params` do not fit the receiver's `local` settings, in a
/// stable order; empty when they fit.
pub fn check(local: &Local, params: &LinkParams) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let max_len = wire::max_payload(local.mtu);
    let mtu_too_big = usize::try_from(params.mtu).map_or(true, |m| m > local.mtu);
    if mtu_too_big {
        out.push(Mismatch::Mtu {
            sender: params.mtu,
            receiver: local.mtu,
        });
    } else if usize::from(params.symbol_size) + SYMBOL_OVERHEAD > max_len {
        out.push(Mismatch::SymbolSize {
            sender: params.symbol_size,
            largest: max_len.saturating_sub(SYMBOL_OVERHEAD),
        });
    }
    let block = usize::from(params.source_symbols) * usize::from(params.symbol_size);
    if block > local.max_block_bytes {
        out.push(Mismatch::BlockSize {
            sender: block,
            largest: local.max_block_bytes,
        });
    }
    if params.config_digest != local.config_digest {
        out.push(Mismatch::Config {
            sender: params.config_digest,
            receiver: local.config_digest,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(mtu: usize) -> Local {
        Local {
            mtu,
            max_block_bytes: 16 << 20,
            config_digest: [1; CONFIG_DIGEST_LEN],
        }
    }

    fn params(mtu: u32) -> LinkParams {
        LinkParams {
            mtu,
            symbol_size: wire::symbol_size_for_mtu(mtu as usize).unwrap(),
            source_symbols: 512,
            config_digest: [1; CONFIG_DIGEST_LEN],
        }
    }

    #[test]
    fn equal_settings_agree_and_a_larger_receiver_mtu_is_fine() {
        assert!(check(&local(1500), &params(1500)).is_empty());
        assert!(check(&local(9000), &params(1500)).is_empty());
        assert!(check(&local(1500), &params(1400)).is_empty());
    }

    #[test]
    fn a_larger_sender_mtu_names_both_values() {
        let m = check(&local(1500), &params(9000));
        assert_eq!(
            m,
            vec![Mismatch::Mtu {
                sender: 9000,
                receiver: 1500
            }]
        );
        let text = m[0].to_string();
        assert!(text.contains("9000") && text.contains("1500"), "{text}");
        assert_eq!(m[0].reason(), "mtu");
    }

    #[test]
    fn a_symbol_too_long_for_the_same_mtu() {
        let mut p = params(1500);
        p.symbol_size = 1424;
        assert_eq!(
            check(&local(1500), &p),
            vec![Mismatch::SymbolSize {
                sender: 1424,
                largest: 1420
            }]
        );
    }

    #[test]
    fn blocks_too_large_and_another_digest() {
        let mut p = params(1500);
        p.source_symbols = 56_403;
        p.config_digest = [2; CONFIG_DIGEST_LEN];
        let m = check(&local(1500), &p);
        assert_eq!(
            m.iter().map(Mismatch::reason).collect::<Vec<_>>(),
            vec!["block_size", "config"]
        );
        assert!(m[1].to_string().contains("0202020202020202"), "{}", m[1]);
        assert!(m[1].to_string().contains("0101010101010101"), "{}", m[1]);
    }

    #[test]
    fn the_digest_ignores_order_and_sees_every_field() {
        let a = ChannelSpec {
            name: "to-internet",
            kind: "files",
            from: "court",
            to: "internet",
        };
        let b = ChannelSpec {
            name: "to-court",
            ..a
        };
        assert_eq!(config_digest(&[a, b]), config_digest(&[b, a]));
        assert_ne!(config_digest(&[a, b]), config_digest(&[a]));
        assert_ne!(config_digest(&[a]), config_digest(&[]));
        for other in [
            ChannelSpec {
                kind: "messages",
                ..a
            },
            ChannelSpec {
                from: "mobile",
                ..a
            },
            ChannelSpec { to: "court", ..a },
        ] {
            assert_ne!(config_digest(&[a]), config_digest(&[other]));
        }
        // the length prefix keeps fields apart
        let x = ChannelSpec {
            name: "ab",
            kind: "c",
            ..a
        };
        let y = ChannelSpec {
            name: "a",
            kind: "bc",
            ..a
        };
        assert_ne!(config_digest(&[x]), config_digest(&[y]));
    }
}
