//! Differential fuzzing of the zip reader: whenever the gateway accepts an archive, the zip
//! crate's central-directory reading and a streaming reading must see the same entries.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    isogate::fuzzing::zip_views(data);
});
