//! Billing: what a tenant's usage costs over a period ([`report`], from the ledger), cut in
//! the period a caller asks for ([`period`]).

pub mod period;
pub mod report;
