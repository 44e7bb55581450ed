//! The `kumo` command-line tool: one binary that scaffolds a project, turns
//! its resource files into migrations, manages its database and serves it.
//!
//! - [`cli`]: the commands and their arguments (clap).
//! - [`scaffold`]: `kumo new` and `kumo demo` project templates.
//! - [`ops`]: what each command does, in terms of `kumo-core` and `kumo-db`.
//! - [`users`]: `kumo user`, accounts managed through the auth layer's store.

/// `println!` for command output, except that a closed stdout ends the
/// process quietly instead of panicking: in `kumo db status | head -1` the
/// reader has all it wanted.
macro_rules! say {
    () => {
        $crate::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod cli;
pub mod ops;
pub mod scaffold;
pub mod users;

/// Writes to stdout; see [`say!`]. Other write errors panic, as `println!`'s do.
pub(crate) fn write_stdout(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        panic!("failed printing to stdout: {e}");
    }
}
