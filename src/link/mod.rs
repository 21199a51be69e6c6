//! The links between the two nodes of a pair: the I/O shells that move sealed objects
//! across and feed what arrives into the one receiver pipeline.
//!
//! ```text
//!  sender::route ─► quic::send  ══ QUIC, mTLS, receipts back ══► quic::recv  ─► receiver
//!                 ─► diode::send ══ UDP + RaptorQ, nothing back ═► diode::recv ─► receiver
//! ```

pub mod diode;
pub mod quic;
