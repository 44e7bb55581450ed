//! The `kumo` command-line tool: one binary that scaffolds a project, turns
//! its resource files into migrations, manages its database and serves it.
//!
//! - [`cli`]: the commands and their arguments (clap).
//! - [`scaffold`]: `kumo new` and `kumo demo` project templates.
//! - [`ops`]: what each command does, in terms of `kumo-core` and `kumo-db`.

pub mod cli;
pub mod ops;
pub mod scaffold;
