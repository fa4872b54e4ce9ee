//! setten collector: receives the agents' findings, keeps them in an embedded store and
//! merges one external-connection-point inventory.
#![forbid(unsafe_code)]
