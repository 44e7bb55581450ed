//! Integration tests of resource loading, seeds and the policy language.
//!
//! One test binary (modules below) so the crate links once. Error output is
//! checked with insta snapshots in `snapshots/`; the snapshots are the
//! reference for what a user sees, so review them when they change.

mod errors;
mod independent;
mod indexes;
mod policy;
mod schema;
mod seeds;
mod support;
