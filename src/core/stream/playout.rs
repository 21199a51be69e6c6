//! The playout of a stream on the receiving node: puts the packets that crossed the link
//! back in the order the sending node admitted them (the frame's `seq`), without delaying a
//! packet that comes in order. It owns the packets held behind a gap, the delay budget a
//! gap is waited for, and which packets come too late.
//!
//! ```text
//!  push(seq) ─► seq == next ─► out at once (and the held ones that follow it)
//!            ─► seq >  next ─► held until the gap fills, or until the oldest held packet
//!                              has waited budget_ms: then Gap(skipped) and on
//!            ─► seq <  next, or already held ─► Late (dropped)
//!  pass_over(seq) ─► the place of a packet refused here: counts as come, goes out as nothing
//!  pop(now) ─► Packet | Late | Gap, in order
//! ```
//!
//! A session's order starts at seq 0, the sending node's first packet: when that packet is
//! lost or overtaken on the way (the diode's repair symbols bring it back a moment later),
//! the packets after it wait for it like behind any other gap. A first packet numbered
//! [`JOIN_AFTER`] or more means this node joined the session in its middle (it started
//! while the sending node ran): that packet sets the order.
//!
//! Sans-IO: the caller gives a monotonic `now_ms`, calls [`Playout::pop`] until `None`
//! after every push or pass-over, and again at [`Playout::next_deadline`].

use std::collections::{BTreeMap, VecDeque};

/// The most packets held behind a gap; beyond it the gap is skipped at once.
pub const MAX_HELD: usize = 1024;

/// A session's first packet numbered this or more starts the order there (this node
/// joined the session in its middle); one numbered less waits for the packets before it,
/// from seq 0 on, at most the delay budget.
pub const JOIN_AFTER: u64 = MAX_HELD as u64;

/// What the playout gives out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// The next packet of the stream, to emit.
    Packet(Vec<u8>),
    /// A packet came after later ones had gone out, or twice: dropped (counted as
    /// `DropReason::Late`).
    Late,
    /// Packets that never came were given up: the number of sequence numbers skipped.
    Gap(u64),
}

/// One held packet: `None` for the place of one refused on this node.
#[derive(Debug)]
struct Held {
    payload: Option<Vec<u8>>,
}

/// The order of one stream's packets on the receiving node.
#[derive(Debug)]
pub struct Playout {
    budget_ms: u64,
    /// The sending node's session the order belongs to.
    session: Option<u64>,
    /// The session before it: its stragglers are late.
    retired: Option<u64>,
    /// The seq expected next; `None` until the session's first packet.
    next: Option<u64>,
    /// Packets after a gap, by seq.
    held: BTreeMap<u64, Held>,
    /// (arrival ms, seq) of held packets in arrival order; entries whose packet has gone
    /// out are skipped (and dropped) when met.
    arrivals: VecDeque<(u64, u64)>,
    /// What is ready to give out.
    ready: VecDeque<Out>,
}

impl Playout {
    /// A playout that waits at most `budget_ms` (ms) for a gap to fill.
    pub fn new(budget_ms: u64) -> Playout {
        Playout {
            budget_ms,
            session: None,
            retired: None,
            next: None,
            held: BTreeMap::new(),
            arrivals: VecDeque::new(),
            ready: VecDeque::new(),
        }
    }

    /// The delay budget, in ms.
    pub fn budget_ms(&self) -> u64 {
        self.budget_ms
    }

    /// How many packets (and places passed over) are held behind a gap (at most
    /// [`MAX_HELD`]).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes one packet of the sending node's `session`, number `seq`, arrived at `now_ms`.
    ///
    /// A session's order starts at seq 0, or at its first packet when that is numbered
    /// [`JOIN_AFTER`] or more (earlier seqs are then late). A packet of another session
    /// than the current one starts that session: the packets held for the old one go out
    /// in order (their gaps skipped), and the old session's later packets are late.
    /// Results are taken with [`Playout::pop`].
    pub fn push(&mut self, now_ms: u64, session: u64, seq: u64, payload: Vec<u8>) {
        self.take(now_ms, session, seq, Some(payload));
    }

    /// Takes the place of packet `seq` of `session`, arrived at `now_ms` and refused on
    /// this node (its drop is counted by the caller): the packets after it need not wait
    /// for it, and nothing goes out for it. A late or duplicate one is ignored.
    pub fn pass_over(&mut self, now_ms: u64, session: u64, seq: u64) {
        self.take(now_ms, session, seq, None);
    }

    fn take(&mut self, now_ms: u64, session: u64, seq: u64, payload: Option<Vec<u8>>) {
        let late = |ready: &mut VecDeque<Out>| {
            if payload.is_some() {
                ready.push_back(Out::Late);
            }
        };
        if self.session != Some(session) {
            if self.retired == Some(session) {
                late(&mut self.ready);
                return;
            }
            self.flush();
            self.retired = self.session;
            self.session = Some(session);
            self.next = None;
        }
        let next = *self
            .next
            .get_or_insert(if seq < JOIN_AFTER { 0 } else { seq });
        if seq < next || self.held.contains_key(&seq) {
            late(&mut self.ready);
            return;
        }
        if seq == next {
            if let Some(payload) = payload {
                self.ready.push_back(Out::Packet(payload));
            }
            self.next = Some(seq.saturating_add(1));
            self.drain();
            return;
        }
        self.held.insert(seq, Held { payload });
        self.arrivals.push_back((now_ms, seq));
        while self.held.len() > MAX_HELD {
            self.skip_gap();
        }
        if self.arrivals.len() > 2 * MAX_HELD {
            let held = &self.held;
            self.arrivals.retain(|(_, s)| held.contains_key(s));
        }
    }

    /// The next output at `now_ms`: what is ready, or, when the oldest held packet has
    /// waited `budget_ms`, the gap before the first held packet ([`Out::Gap`]) followed by
    /// the packets from there on. `None`: nothing until more packets come or
    /// [`Playout::next_deadline`].
    pub fn pop(&mut self, now_ms: u64) -> Option<Out> {
        if let Some(out) = self.ready.pop_front() {
            return Some(out);
        }
        if self
            .oldest_arrival()
            .is_some_and(|t| now_ms >= t.saturating_add(self.budget_ms))
        {
            self.skip_gap();
        }
        self.ready.pop_front()
    }

    /// When [`Playout::pop`] has something next, in ms on the caller's clock: the time the
    /// oldest held packet has waited the budget, or 0 (at once) when outputs are ready;
    /// `None` when nothing is held or ready.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.ready.is_empty() {
            return Some(0);
        }
        self.arrivals
            .iter()
            .find(|(_, seq)| self.held.contains_key(seq))
            .map(|(t, _)| t.saturating_add(self.budget_ms))
    }

    /// The arrival time of the oldest packet still held; drops spent entries met first.
    fn oldest_arrival(&mut self) -> Option<u64> {
        while let Some(&(t, seq)) = self.arrivals.front() {
            if self.held.contains_key(&seq) {
                return Some(t);
            }
            self.arrivals.pop_front();
        }
        None
    }

    /// Gives up the gap before the first held packet, then passes the held packets that
    /// follow in order.
    fn skip_gap(&mut self) {
        let Some(&first) = self.held.keys().next() else {
            return;
        };
        let next = self.next.unwrap_or(first);
        if first > next {
            self.ready.push_back(Out::Gap(first - next));
        }
        self.next = Some(first);
        self.drain();
    }

    /// Passes the held packets from `next` on while they follow without a gap.
    fn drain(&mut self) {
        while let Some(next) = self.next {
            let Some(held) = self.held.remove(&next) else {
                break;
            };
            if let Some(payload) = held.payload {
                self.ready.push_back(Out::Packet(payload));
            }
            self.next = Some(next.saturating_add(1));
        }
        if self.held.is_empty() {
            self.arrivals.clear();
        }
    }

    /// Passes everything held, in order, its gaps skipped.
    fn flush(&mut self) {
        while !self.held.is_empty() {
            self.skip_gap();
        }
        self.arrivals.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: u64) -> Vec<u8> {
        seq.to_be_bytes().to_vec()
    }

    fn pkt(seq: u64) -> Out {
        Out::Packet(p(seq))
    }

    fn drain(pl: &mut Playout, now: u64) -> Vec<Out> {
        std::iter::from_fn(|| pl.pop(now)).collect()
    }

    #[test]
    fn in_order_packets_go_out_at_once() {
        let mut pl = Playout::new(20);
        for seq in 0..100 {
            pl.push(seq, 1, seq, p(seq));
            assert_eq!(pl.next_deadline(), Some(0));
            assert_eq!(drain(&mut pl, seq), vec![pkt(seq)]);
            assert_eq!(pl.next_deadline(), None);
        }
        assert_eq!(pl.held(), 0);
    }

    #[test]
    fn a_reorder_within_the_budget_is_put_right() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        assert_eq!(drain(&mut pl, 0), vec![pkt(0)]);
        pl.push(1, 1, 2, p(2));
        pl.push(2, 1, 3, p(3));
        assert_eq!(drain(&mut pl, 2), vec![]);
        assert_eq!(pl.held(), 2);
        // due when the oldest held (seq 2, arrived at 1) has waited 20 ms
        assert_eq!(pl.next_deadline(), Some(21));
        pl.push(5, 1, 1, p(1));
        assert_eq!(drain(&mut pl, 5), vec![pkt(1), pkt(2), pkt(3)]);
        assert_eq!(pl.next_deadline(), None);
        pl.push(6, 1, 4, p(4));
        assert_eq!(drain(&mut pl, 6), vec![pkt(4)]);
    }

    #[test]
    fn a_gap_is_skipped_after_the_budget() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        pl.push(10, 1, 3, p(3));
        pl.push(15, 1, 4, p(4));
        assert_eq!(drain(&mut pl, 15), vec![pkt(0)]);
        assert_eq!(drain(&mut pl, 29), vec![]);
        assert_eq!(pl.next_deadline(), Some(30));
        assert_eq!(drain(&mut pl, 30), vec![Out::Gap(2), pkt(3), pkt(4)]);
        // the skipped ones are late when they come
        pl.push(31, 1, 1, p(1));
        pl.push(31, 1, 2, p(2));
        assert_eq!(drain(&mut pl, 31), vec![Out::Late, Out::Late]);
        pl.push(32, 1, 5, p(5));
        assert_eq!(drain(&mut pl, 32), vec![pkt(5)]);
    }

    #[test]
    fn two_gaps_wait_each_for_its_own_packets() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        pl.push(0, 1, 2, p(2)); // gap at 1
        pl.push(15, 1, 5, p(5)); // gap at 3, 4
        assert_eq!(drain(&mut pl, 15), vec![pkt(0)]);
        assert_eq!(drain(&mut pl, 20), vec![Out::Gap(1), pkt(2)]);
        // seq 5 arrived at 15: due at 35, and 3 may still come
        assert_eq!(pl.next_deadline(), Some(35));
        pl.push(22, 1, 3, p(3));
        assert_eq!(drain(&mut pl, 22), vec![pkt(3)]);
        assert_eq!(drain(&mut pl, 35), vec![Out::Gap(1), pkt(5)]);
    }

    #[test]
    fn the_oldest_held_packet_sets_the_deadline_not_the_lowest() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        pl.push(0, 1, 5, p(5));
        pl.push(10, 1, 2, p(2));
        drain(&mut pl, 10);
        // seq 5 has waited since 0: at 20 the gap before seq 2 is given up, then the gap
        // before 5, its packet overdue too
        assert_eq!(pl.next_deadline(), Some(20));
        assert_eq!(drain(&mut pl, 19), vec![]);
        assert_eq!(
            drain(&mut pl, 20),
            vec![Out::Gap(1), pkt(2), Out::Gap(2), pkt(5)]
        );
    }

    #[test]
    fn duplicates_are_late() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        pl.push(0, 1, 0, p(0));
        pl.push(0, 1, 2, p(2));
        pl.push(0, 1, 2, p(2));
        assert_eq!(drain(&mut pl, 0), vec![pkt(0), Out::Late, Out::Late]);
        pl.push(1, 1, 1, p(1));
        assert_eq!(drain(&mut pl, 1), vec![pkt(1), pkt(2)]);
        pl.push(2, 1, 2, p(2));
        assert_eq!(drain(&mut pl, 2), vec![Out::Late]);
    }

    #[test]
    fn a_receiver_that_joins_a_session_in_its_middle_starts_at_its_first_packet() {
        let mut pl = Playout::new(20);
        pl.push(0, 9, 5000, p(5000));
        pl.push(0, 9, 4999, p(4999));
        pl.push(0, 9, 5001, p(5001));
        assert_eq!(drain(&mut pl, 0), vec![pkt(5000), Out::Late, pkt(5001)]);
        assert_eq!(pl.next_deadline(), None);
        // the least seq that counts as the middle
        let mut pl = Playout::new(20);
        pl.push(0, 9, JOIN_AFTER, p(JOIN_AFTER));
        assert_eq!(drain(&mut pl, 0), vec![pkt(JOIN_AFTER)]);
    }

    #[test]
    fn a_session_s_first_packet_overtaken_on_the_way_still_goes_out_first() {
        // seq 0 lost on the wire and brought back by the diode's repair symbols 15 ms on:
        // the packets after it wait for it rather than making it late
        let mut pl = Playout::new(40);
        pl.push(0, 7, 1, p(1));
        pl.push(5, 7, 2, p(2));
        assert_eq!(drain(&mut pl, 5), vec![]);
        assert_eq!(pl.next_deadline(), Some(40));
        pl.push(15, 7, 0, p(0));
        assert_eq!(drain(&mut pl, 15), vec![pkt(0), pkt(1), pkt(2)]);
        // never brought back: the gap is skipped after the budget, as any other
        let mut pl = Playout::new(40);
        pl.push(0, 8, 3, p(3));
        assert_eq!(drain(&mut pl, 39), vec![]);
        assert_eq!(drain(&mut pl, 40), vec![Out::Gap(3), pkt(3)]);
        pl.push(41, 8, 1, p(1));
        assert_eq!(drain(&mut pl, 41), vec![Out::Late]);
    }

    #[test]
    fn a_packet_refused_here_holds_up_none_after_it() {
        let mut pl = Playout::new(20);
        pl.push(0, 1, 0, p(0));
        pl.pass_over(0, 1, 1);
        pl.push(0, 1, 2, p(2));
        assert_eq!(drain(&mut pl, 0), vec![pkt(0), pkt(2)]);
        // passed over out of order: the held packets go on once its place is filled
        pl.push(1, 1, 4, p(4));
        assert_eq!(drain(&mut pl, 1), vec![]);
        pl.pass_over(2, 1, 3);
        assert_eq!(drain(&mut pl, 2), vec![pkt(4)]);
        // a session's first packet refused, then a skipped place given out as a gap only
        let mut pl = Playout::new(20);
        pl.pass_over(0, 2, 0);
        pl.push(0, 2, 1, p(1));
        assert_eq!(drain(&mut pl, 0), vec![pkt(1)]);
        pl.pass_over(1, 2, 3);
        pl.push(1, 2, 4, p(4));
        assert_eq!(drain(&mut pl, 21), vec![Out::Gap(1), pkt(4)]);
        // late or duplicate places are ignored, not counted late
        pl.pass_over(22, 2, 2);
        pl.pass_over(22, 2, 4);
        assert_eq!(drain(&mut pl, 22), vec![]);
        assert_eq!(pl.held(), 0);
    }

    #[test]
    fn a_new_session_resets_the_order() {
        let mut pl = Playout::new(20);
        for seq in 0..5 {
            pl.push(0, 1, seq, p(seq));
        }
        pl.push(0, 1, 7, p(7)); // held behind a gap when the sender restarts
        assert_eq!(drain(&mut pl, 0).len(), 5);
        pl.push(1, 2, 0, p(100));
        assert_eq!(
            drain(&mut pl, 1),
            vec![Out::Gap(2), pkt(7), Out::Packet(p(100))]
        );
        pl.push(2, 2, 1, p(101));
        // a straggler of the old session is late
        pl.push(2, 1, 5, p(5));
        assert_eq!(drain(&mut pl, 2), vec![Out::Packet(p(101)), Out::Late]);
        assert_eq!(pl.next_deadline(), None);
        // a third session joined in its middle: what the second held goes out first
        pl.push(3, 2, 3, p(103));
        pl.push(4, 3, 5050, p(5050));
        assert_eq!(
            drain(&mut pl, 4),
            vec![Out::Gap(1), Out::Packet(p(103)), pkt(5050)]
        );
    }

    #[test]
    fn at_most_1024_packets_are_held() {
        let mut pl = Playout::new(1000);
        pl.push(0, 1, 0, p(0));
        assert_eq!(drain(&mut pl, 0), vec![pkt(0)]);
        // seq 1 lost; 2..=1025 held (1024 packets)
        for seq in 2..=1025 {
            pl.push(1, 1, seq, p(seq));
        }
        assert_eq!(pl.held(), MAX_HELD);
        assert_eq!(drain(&mut pl, 1), vec![]);
        // one more: the gap is skipped at once, everything goes out
        pl.push(1, 1, 1026, p(1026));
        let out = drain(&mut pl, 1);
        assert_eq!(out.len(), 1 + 1025);
        assert_eq!(out[0], Out::Gap(1));
        assert_eq!(out[1], pkt(2));
        assert_eq!(out[1025], pkt(1026));
        assert_eq!(pl.held(), 0);
        // with holes everywhere: only the oldest gaps are skipped, 1024 stay held
        for seq in (2000..6000).step_by(2) {
            pl.push(2, 1, seq, p(seq));
            assert!(pl.held() <= MAX_HELD);
        }
        assert_eq!(pl.held(), MAX_HELD);
        let out = drain(&mut pl, 2);
        assert_eq!(out.first(), Some(&Out::Gap(2000 - 1027)));
        assert!(out.iter().all(|o| !matches!(o, Out::Late)));
        assert!(pl.arrivals.len() <= 2 * MAX_HELD + 1);
        // and the rest after the budget
        let rest = drain(&mut pl, 1002);
        assert_eq!(
            rest.iter().filter(|o| matches!(o, Out::Packet(_))).count(),
            MAX_HELD
        );
    }

    #[test]
    fn random_loss_and_reorder_keep_the_order() {
        let mut next = crate::core::manifest::tests::xorshift(0x5eed);
        let mut pl = Playout::new(20);
        let mut sent: Vec<(u64, u64)> = Vec::new(); // (arrival ms, seq)
        for seq in 0..20_000u64 {
            let r = next();
            if r.is_multiple_of(100) {
                continue; // lost
            }
            let jitter = if r.is_multiple_of(7) { next() % 30 } else { 0 };
            sent.push((seq + jitter, seq));
        }
        sent.sort();
        let mut last = None;
        let (mut packets, mut gaps, mut late) = (0u64, 0u64, 0u64);
        for &(now, seq) in &sent {
            pl.push(now, 1, seq, p(seq));
            for out in drain(&mut pl, now) {
                match out {
                    Out::Packet(b) => {
                        let s = u64::from_be_bytes(b.try_into().unwrap());
                        assert!(last.is_none_or(|l| s > l), "{s} after {last:?}");
                        last = Some(s);
                        packets += 1;
                    }
                    Out::Gap(n) => {
                        gaps += n;
                        last = last.map(|l| l + n);
                    }
                    Out::Late => late += 1,
                }
            }
            assert!(pl.held() <= MAX_HELD);
        }
        let tail = drain(&mut pl, u64::MAX);
        packets += tail.iter().filter(|o| matches!(o, Out::Packet(_))).count() as u64;
        assert_eq!(packets + late, sent.len() as u64);
        assert!(late > 0 && gaps > 0);
        assert!(packets > sent.len() as u64 * 90 / 100);
    }
}
