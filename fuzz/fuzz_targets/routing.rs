#![no_main]
//! See `badger_relay::fuzzing::routing` for the input layout and the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| badger_relay::fuzzing::routing(data));
