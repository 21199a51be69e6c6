//! Fuzzes the diode receiver: datagrams off the wire, authenticated or not, through the
//! header and body parsers, FEC reassembly, the record unpacker and the stream decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::diode_datagram(data);
});
