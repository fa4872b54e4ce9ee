//! Maintenance windows: days of the week and a time range in local time.
