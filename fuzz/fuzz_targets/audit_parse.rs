//! Fuzzes the audit parsers: records, stored checkpoints, checkpoint notes (the peer
//! witness reads these off the wire) and proof documents.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::audit_record_and_checkpoint(data);
});
