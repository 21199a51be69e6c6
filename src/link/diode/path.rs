//! The network interface that carries the diode's datagrams toward an address, and its
//! MTU: read from the kernel's routing table (`/proc/net/route`, longest prefix first) or,
//! where that says nothing (local addresses, IPv6), from `ip route get`, then
//! `/sys/class/net/IF/mtu`. Best effort: `None` when it cannot be told. Used to warn
//! (never to refuse) when `[diode] mtu` is larger than the first hop can carry; a smaller
//! MTU further along the path cannot be seen from here (the receiver names it).
//!
//! ```text
//! peer address ─► /proc/net/route (IPv4) ─┬─► IF ─► /sys/class/net/IF/mtu ─► (IF, mtu)
//!              └► ip route get ADDR ──────┘   (a route's own `mtu N` wins)
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

/// The interface carrying datagrams toward `to`, and the MTU it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Interface name.
    pub interface: String,
    /// Its MTU in bytes (or the route's, where the route sets one).
    pub mtu: usize,
}

/// The first hop toward `to`, or `None` when it cannot be told.
pub fn first_hop(to: IpAddr) -> Option<Hop> {
    // `ip route get` first: it sees the local table (loopback, this host's own addresses),
    // policy routing and a route's own `mtu`; the main table alone when `ip` is missing
    let (interface, route_mtu) = match ip_route_get(to) {
        Some(r) => r,
        None => match to {
            IpAddr::V4(v4) => std::fs::read_to_string("/proc/net/route")
                .ok()
                .and_then(|t| route_interface(&t, v4))
                .map(|i| (i, None))?,
            IpAddr::V6(_) => return None,
        },
    };
    let mtu = match route_mtu {
        Some(m) => m,
        None => std::fs::read_to_string(format!("/sys/class/net/{interface}/mtu"))
            .ok()?
            .trim()
            .parse()
            .ok()?,
    };
    Some(Hop { interface, mtu })
}

/// A warning when `mtu` (the configured `[diode] mtu`) is larger than the first hop
/// toward `peer` carries: datagrams that long never cross it.
pub fn mtu_warning(mtu: usize, peer: IpAddr) -> Option<String> {
    let hop = first_hop(peer)?;
    (mtu > hop.mtu).then(|| {
        format!(
            "[diode] mtu = {mtu} exceeds the MTU {} of interface {} toward {peer}: full-size datagrams cannot cross it; set mtu = {} (or less) on both nodes",
            hop.mtu, hop.interface, hop.mtu
        )
    })
}

/// The interface of the longest-prefix route in `/proc/net/route`'s text that holds `to`.
fn route_interface(table: &str, to: Ipv4Addr) -> Option<String> {
    // addresses and masks are the kernel's u32 in host order (little-endian here), hex
    let addr = u32::from_le_bytes(to.octets());
    let mut best: Option<(u32, String)> = None;
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(iface), Some(dest), Some(flags), Some(mask)) =
            (cols.first(), cols.get(1), cols.get(3), cols.get(7))
        else {
            continue;
        };
        let parse = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(flags), Some(mask)) = (parse(dest), parse(flags), parse(mask)) else {
            continue;
        };
        // RTF_UP
        if flags & 1 == 0 || addr & mask != dest {
            continue;
        }
        let bits = mask.count_ones();
        if best.as_ref().is_none_or(|(b, _)| bits > *b) {
            best = Some((bits, (*iface).to_string()));
        }
    }
    best.map(|(_, i)| i)
}

/// `ip route get ADDR`: the interface (`dev IF`) and the route's own MTU (`mtu N`), if any.
fn ip_route_get(to: IpAddr) -> Option<(String, Option<usize>)> {
    let out = Command::new("ip")
        .args(["route", "get", &to.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_route_get(&String::from_utf8_lossy(&out.stdout))
}

fn parse_route_get(text: &str) -> Option<(String, Option<usize>)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
    };
    let dev = after("dev")?.to_string();
    let mtu = after("mtu").and_then(|m| m.parse().ok());
    Some((dev, mtu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_route_is_taken() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     vlan7\t00004D0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     tun0\t00324D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     down0\t02324D0A\t00000000\t0000\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";
        let at = |a: &str| route_interface(table, a.parse().unwrap());
        assert_eq!(at("10.77.50.2").as_deref(), Some("tun0"));
        assert_eq!(at("10.77.9.9").as_deref(), Some("vlan7"));
        assert_eq!(at("192.0.2.1").as_deref(), Some("eth0"));
        assert_eq!(
            route_interface("Iface\n", "10.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn ip_route_get_output_is_read() {
        assert_eq!(
            parse_route_get("10.77.51.1 dev isgb src 10.77.51.2 uid 0 \n    cache \n"),
            Some(("isgb".to_string(), None))
        );
        assert_eq!(
            parse_route_get("local 127.0.0.1 dev lo table local src 127.0.0.1 uid 0\n"),
            Some(("lo".to_string(), None))
        );
        assert_eq!(
            parse_route_get("10.9.0.1 via 10.0.0.1 dev eth0 src 10.0.0.2 mtu 1400\n"),
            Some(("eth0".to_string(), Some(1400)))
        );
        assert_eq!(
            parse_route_get("RTNETLINK answers: Network is unreachable"),
            None
        );
    }
}
