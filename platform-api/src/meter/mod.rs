//! Metering: what every instance the platform runs uses, turned from samples of its counters
//! into exact usage ([`usage`]), for billing to price.

pub mod usage;
