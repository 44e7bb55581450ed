//! A real SMTP server for tests: aiosmtpd from the project's Python
//! virtualenv (`.venv/`, or `KUMO_VENV`; scripts/python-tools.sh installs
//! it, scripts/test runs that), delivering into a maildir. Shared by the
//! test crates that send mail, each including this file with `#[path]`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtualenv's Python: `KUMO_VENV`, or `.venv` in the workspace (the
/// nearest folder above the including crate that holds `Cargo.lock`).
pub(crate) fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KUMO_VENV").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .find(|dir| dir.join("Cargo.lock").is_file())
                .expect("the crate is inside the workspace")
                .join(".venv")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-tools.sh (scripts/test does)",
        python.display()
    );
    python
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on `127.0.0.1:<port>`, delivering into a maildir; stopped when
/// dropped.
pub(crate) struct SmtpSink(Child);

impl SmtpSink {
    /// Starts it and waits until it listens. The maildir `dir` is made by
    /// the server: Python's maildir does not fill in a folder that exists.
    pub(crate) fn start(port: u16, dir: &Path) -> SmtpSink {
        let child = Command::new(venv_python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let sink = SmtpSink(child);
        let until = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "aiosmtpd did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        sink
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
