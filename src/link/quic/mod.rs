//! The `quic` link: QUIC with mutual TLS, one unidirectional stream per object, fixed-size
//! receipts back.
//!
//! ```text
//!  send: sealed ─► stream (frame + content) ══► ... ◄══ receipt ─► confirm (spool entry gone)
//!  recv: stream ─► frame ─► receiver pipeline ─► receipt
//!  stream channels: Outgoing ─► datagram thread ─► QUIC DATAGRAM ══► receiver.stream_frame
//! ```

pub mod recv;
pub mod send;
