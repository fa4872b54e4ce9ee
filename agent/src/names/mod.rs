//! Passive names: what the wire says about who an address is.
//!
//! External addresses get names from DNS answers (TTL respected); internal hosts from
//! DHCP (option 12), NetBIOS name service, LLMNR and mDNS; MAC addresses get a vendor from
//! the IEEE OUI registry when it is installed.
