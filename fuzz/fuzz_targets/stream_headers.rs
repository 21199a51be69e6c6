//! Fuzzes the stream readers: RTP headers, MPEG-TS packets and stream frames off the link,
//! through both gates, and the playout's order.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::stream_headers(data);
});
