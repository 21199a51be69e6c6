//! The MPEG-TS check of the stream gate (ISO/IEC 13818-1 §2.4.3.2): a UDP payload (or the
//! payload of an RTP packet of payload type 33) must be whole 188-byte transport packets,
//! each beginning with the sync byte 0x47, and carry only the PIDs the policy allows.
//!
//! ```text
//!  byte 0      1                      2          3
//!  sync 0x47 | TEI PUSI prio PID(12..8) | PID(7..0) | scrambling, adaptation, counter | …
//! ```

use super::DropReason;

/// Length of one MPEG-TS transport packet, in bytes.
pub const TS_PACKET_LEN: usize = 188;

/// The byte every transport packet begins with.
pub const SYNC_BYTE: u8 = 0x47;

/// The null packet PID (stuffing): always allowed, whatever the policy's list.
pub const NULL_PID: u16 = 0x1FFF;

/// The 13-bit PID of one transport packet (`packet` at least 3 bytes; 0 otherwise).
pub fn pid(packet: &[u8]) -> u16 {
    match packet {
        [_, hi, lo, ..] => u16::from_be_bytes([hi & 0x1f, *lo]),
        _ => 0,
    }
}

/// Checks that `payload` is whole MPEG-TS packets (ISO/IEC 13818-1) of allowed PIDs.
///
/// `payload`: the bytes after the UDP header (udp-ts) or after the RTP header (payload
/// type 33). `pids`: the PIDs allowed (0..=8191); empty means not checked. The null PID
/// 0x1FFF is always allowed.
///
/// # Errors
///
/// [`DropReason::TsMalformed`] when the length is not a non-zero multiple of 188 or a
/// packet does not begin with 0x47 (checked for all packets first); then [`DropReason::Pid`]
/// when a packet's PID is not allowed.
pub fn check_ts(payload: &[u8], pids: &[u16]) -> Result<(), DropReason> {
    if payload.is_empty() || payload.len() % TS_PACKET_LEN != 0 {
        return Err(DropReason::TsMalformed);
    }
    let packets = payload.chunks_exact(TS_PACKET_LEN);
    if packets.clone().any(|p| p.first() != Some(&SYNC_BYTE)) {
        return Err(DropReason::TsMalformed);
    }
    if pids.is_empty() {
        return Ok(());
    }
    for p in packets {
        let pid = pid(p);
        if pid != NULL_PID && !pids.contains(&pid) {
            return Err(DropReason::Pid);
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One transport packet of `pid`, filled with 0xff after the 4-byte header.
    pub(crate) fn ts_packet(pid: u16) -> Vec<u8> {
        let mut p = vec![0xff; TS_PACKET_LEN];
        p[0] = SYNC_BYTE;
        p[1] = 0x40 | ((pid >> 8) as u8 & 0x1f); // payload unit start
        p[2] = pid as u8;
        p[3] = 0x10;
        p
    }

    fn packets(pids: &[u16]) -> Vec<u8> {
        pids.iter().flat_map(|&p| ts_packet(p)).collect()
    }

    #[test]
    fn whole_packets_of_allowed_pids_pass() {
        let seven = packets(&[0, 256, 257, 256, 4096, 257, 256]);
        assert_eq!(seven.len(), 1316);
        assert_eq!(check_ts(&seven, &[0, 256, 257, 4096]), Ok(()));
        assert_eq!(check_ts(&seven, &[]), Ok(()));
        assert_eq!(pid(&ts_packet(8191)), 8191);
        assert_eq!(pid(&ts_packet(4096)), 4096);
        assert_eq!(pid(&[0x47]), 0);
    }

    #[test]
    fn lengths_that_are_not_whole_packets_are_malformed() {
        let one = ts_packet(256);
        assert_eq!(check_ts(&[], &[]), Err(DropReason::TsMalformed));
        assert_eq!(check_ts(&one[..187], &[]), Err(DropReason::TsMalformed));
        let mut long = one.clone();
        long.push(0x47);
        assert_eq!(long.len(), 189);
        assert_eq!(check_ts(&long, &[]), Err(DropReason::TsMalformed));
        let two = packets(&[256, 256]);
        assert_eq!(check_ts(&two[..375], &[256]), Err(DropReason::TsMalformed));
        assert_eq!(check_ts(&two, &[256]), Ok(()));
    }

    #[test]
    fn a_wrong_sync_byte_anywhere_is_malformed() {
        for at in 0..3 {
            let mut three = packets(&[256, 256, 256]);
            three[at * TS_PACKET_LEN] = 0x48;
            assert_eq!(check_ts(&three, &[]), Err(DropReason::TsMalformed));
            // malformed is reported before a PID that is not allowed
            assert_eq!(check_ts(&three, &[1]), Err(DropReason::TsMalformed));
        }
    }

    #[test]
    fn pids_outside_the_list_are_refused_but_the_null_pid_passes() {
        let data = packets(&[256, 257]);
        assert_eq!(check_ts(&data, &[256]), Err(DropReason::Pid));
        assert_eq!(check_ts(&data, &[257]), Err(DropReason::Pid));
        assert_eq!(check_ts(&data, &[256, 257]), Ok(()));
        let stuffed = packets(&[256, NULL_PID, NULL_PID]);
        assert_eq!(check_ts(&stuffed, &[256]), Ok(()));
        assert_eq!(check_ts(&packets(&[NULL_PID]), &[0]), Ok(()));
        // the TEI, PUSI and priority bits are not part of the PID
        let mut flagged = ts_packet(256);
        flagged[1] |= 0xe0;
        assert_eq!(check_ts(&flagged, &[256]), Ok(()));
    }
}
