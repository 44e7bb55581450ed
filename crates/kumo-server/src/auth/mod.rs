//! Accounts and sign-in (issue #4, being built): the clock token lifetimes
//! are decided against, and sessions with rotating refresh tokens. The
//! routes come next; see the note on the issue.

pub mod clock;
pub mod session;
