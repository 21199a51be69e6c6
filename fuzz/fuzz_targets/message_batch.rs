//! Fuzzes the message readers: a batch object as the receiving node reads it, a posted body
//! (one JSON value, NDJSON) as the message API and the outbox read it, and each message read
//! checked under a messages policy (schema, text rules, markings, masking).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::message_batch(data);
});
