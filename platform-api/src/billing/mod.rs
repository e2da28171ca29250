//! Billing: what a tenant's usage costs over a period ([`report`], from the ledger), cut in
//! the period a caller asks for ([`period`]); the monthly invoices closed from the ledger
//! ([`invoices`]) and the notifications they send ([`notify`]), driven by [`task`].

pub mod invoices;
pub mod notify;
pub mod period;
pub mod report;
pub mod task;
