//! Fuzzes content inspection: archive reading (zip, tar, gzip, nested), office document and
//! PDF text extraction, text decoding and masking — everything the receiver reads inside a
//! file that arrived from the other side.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::content(data);
});
