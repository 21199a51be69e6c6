//! Fuzzes everything the receiver decodes from the wire: frame headers, object frames,
//! signed manifests (with the approvals trailer of a version 3 envelope), manifest bodies,
//! receipts, and content verification.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::frame_and_manifest(data);
});
