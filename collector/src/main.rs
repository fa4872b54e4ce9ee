//! `setten-collector`: command-line glue over the `setten_collector` library.

fn main() {}
