//! Delivery through each adapter: a real SMTP server (aiosmtpd from
//! `.venv/`, installed by scripts/python-tools.sh) writing a maildir, `.eml`
//! files, and the dev mailbox; retries while the SMTP server is down.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kumo_core::project::{MailAdapter, MailSection};
use kumo_mail::{DEV_MAILBOX_SIZE, MailError, Message, Outbox, Settings};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("KUMO_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd on `port`, delivering into the maildir `dir` (which it makes:
/// Python's maildir does not fill in a folder that exists).
struct SmtpServer(Child);

impl SmtpServer {
    fn start(port: u16, dir: &Path) -> SmtpServer {
        let child = Command::new(venv_python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let server = SmtpServer(child);
        wait_until("aiosmtpd listens", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The messages in a maildir (or a folder of `.eml` files), as text.
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect()
}

fn section(adapter: MailAdapter, url: Option<String>) -> MailSection {
    MailSection {
        adapter,
        from: Some("Dragon Game <no-reply@dragon.example>".into()),
        url,
        dir: None,
    }
}

fn message(to: &str) -> Message {
    Message {
        to: to.into(),
        subject: "Your sign-in link".into(),
        text: "Open https://game.example/auth/magic_link/abc\nCode: 012345\n".into(),
        html: "<p><a href=\"https://game.example/auth/magic_link/abc\">Sign in</a></p>".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_a_text_and_html_message() {
    let port = free_port();
    let temp = tempfile::tempdir().unwrap();
    let maildir = temp.path().join("maildir");
    let _server = SmtpServer::start(port, &maildir);
    let settings = Settings::from_config(
        &section(MailAdapter::Smtp, None),
        Some(format!("smtp://127.0.0.1:{port}")),
        Path::new("."),
    )
    .unwrap();
    let outbox = Outbox::start(settings);
    assert!(outbox.dev_mailbox().is_none());
    outbox.send(message("player@example.com"));
    let new = maildir.join("new");
    wait_until("the message arrives", || !files_in(&new).is_empty());
    let mail = files_in(&new).remove(0);
    for part in [
        "To: player@example.com",
        "From: \"Dragon Game\" <no-reply@dragon.example>",
        "Subject: Your sign-in link",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "Code: 012345",
    ] {
        assert!(mail.contains(part), "no `{part}` in\n{mail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_fails_is_retried_until_the_server_is_back() {
    let port = free_port();
    let temp = tempfile::tempdir().unwrap();
    let maildir = temp.path().join("maildir");
    let settings = Settings::from_config(
        &section(MailAdapter::Smtp, Some(format!("smtp://127.0.0.1:{port}"))),
        None,
        Path::new("."),
    )
    .unwrap();
    let outbox = Outbox::start_with_retries(settings, vec![Duration::from_millis(300); 40]);
    // Nothing listens yet: the first attempts fail, and the caller knows
    // nothing of it.
    outbox.send(message("player@example.com"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _server = SmtpServer::start(port, &maildir);
    let new = maildir.join("new");
    wait_until("the retried message arrives", || files_in(&new).len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_adapter_writes_one_eml_per_message() {
    let root = tempfile::tempdir().unwrap();
    let mut config = section(MailAdapter::File, None);
    config.dir = Some("outbox".into());
    let outbox = Outbox::start(Settings::from_config(&config, None, root.path()).unwrap());
    outbox.send(message("a@example.com"));
    outbox.send(message("b@example.com"));
    let dir = root.path().join("outbox");
    wait_until("two files", || files_in(&dir).len() == 2);
    let all = files_in(&dir).join("\n");
    assert!(all.contains("To: a@example.com") && all.contains("To: b@example.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_mailbox_lists_newest_first_and_keeps_the_last_500() {
    let outbox = Outbox::start(
        Settings::from_config(&section(MailAdapter::Dev, None), None, Path::new(".")).unwrap(),
    );
    let mailbox = outbox.dev_mailbox().expect("a dev mailbox").clone();
    for n in 0..DEV_MAILBOX_SIZE + 3 {
        outbox.send(message(&format!("p{n}@example.com")));
    }
    wait_until("all kept", || {
        mailbox
            .list()
            .first()
            .is_some_and(|m| m.to == format!("p{}@example.com", DEV_MAILBOX_SIZE + 2))
    });
    let list = mailbox.list();
    assert_eq!(list.len(), DEV_MAILBOX_SIZE);
    assert_eq!(list.last().unwrap().to, "p3@example.com");
    assert_eq!(list[0].subject, "Your sign-in link");
    assert!(list[0].html.contains("<a href"));
    assert!(
        list[0].sent_at.ends_with('Z') && list[0].sent_at.len() == 24,
        "{}",
        list[0].sent_at
    );
}

#[tokio::test]
async fn bad_settings_are_refused_without_showing_the_password() {
    let err = |section: MailSection, env: Option<&str>| {
        Settings::from_config(&section, env.map(str::to_owned), Path::new("."))
            .map(drop)
            .unwrap_err()
    };
    let mut bad_from = section(MailAdapter::Dev, None);
    bad_from.from = Some("not an address".into());
    assert!(matches!(err(bad_from, None), MailError::BadFrom(_)));
    assert!(matches!(
        err(section(MailAdapter::Smtp, None), None),
        MailError::NoSmtpUrl
    ));
    let bad = err(
        section(MailAdapter::Smtp, None),
        Some("ftp://user:hunter2@mail.example:25"),
    );
    assert!(matches!(bad, MailError::BadSmtpUrl(_)), "{bad}");
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
    // The environment wins over the file.
    let ok = Settings::from_config(
        &section(MailAdapter::Smtp, Some("ftp://nope".into())),
        Some("smtp://127.0.0.1:2525".into()),
        Path::new("."),
    );
    assert!(ok.is_ok());
    assert!(!format!("{:?}", ok.unwrap()).contains("2525"));
}
