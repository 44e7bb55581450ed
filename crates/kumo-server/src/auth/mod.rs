//! Accounts and sign-in (issue #4, being built): the clock token lifetimes
//! are decided against, sessions with rotating refresh tokens, and the
//! magic-link flows. The HTTP routes come next; see the note on the issue.

pub mod clock;
pub mod magic_link;
pub mod revocations;
pub mod session;
