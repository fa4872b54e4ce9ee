#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| setten_fuzz::config(data));
