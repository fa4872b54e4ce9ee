//! The hospital's own register (台帳) of expected external connections.
