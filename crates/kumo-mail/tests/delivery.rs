//! Delivery through each adapter: a real SMTP server (aiosmtpd from
//! `.venv/`, installed by scripts/python-tools.sh) writing a maildir, `.eml`
//! files, and the dev mailbox; retries while the SMTP server is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kumo_core::project::{MailAdapter, MailSection};
use kumo_mail::{DEV_MAILBOX_SIZE, MailError, Message, Outbox, SMTP_TIMEOUT, Settings};

#[path = "../../../tests/support/smtp_sink.rs"]
mod smtp_sink;

use smtp_sink::{SmtpSink, free_port, venv_python};

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
        tls_ca_file: None,
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
    let _server = SmtpSink::start(port, &maildir);
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
    let _server = SmtpSink::start(port, &maildir);
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

// ---- TLS and credentials ----------------------------------------------------

/// A certificate authority and a server certificate it signed, for
/// `127.0.0.1` and `localhost`, made by `openssl` for each test: the client
/// trusts the authority only through `[mail] tls_ca_file`.
struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn certificates(dir: &Path) -> Certificates {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (the TLS tests make their certificates with it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=Kumo test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-new"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// aiosmtpd with TLS (`starttls`: STARTTLS required before anything else;
/// `implicit`: TLS from the first byte) and AUTH required, accepting one
/// user and password; each AUTH is written to `log` (never the password).
const TLS_SERVER: &str = r#"
import ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

mode, port, maildir, cert, key, user, password, log = sys.argv[1:]
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user.encode()
          and auth_data.password == password.encode())
    with open(log, "a") as f:
        tls = server.transport.get_extra_info("ssl_object") is not None
        f.write("%s %s tls=%s\n" % (mechanism, "accepted" if ok else "refused", tls))
    return AuthResult(success=ok)

# PLAIN only: it is lettre's first choice, and after a refused PLAIN this
# aiosmtpd stalls a client that goes on to try LOGIN until it times out.
common = dict(authenticator=authenticator, auth_required=True,
              auth_exclude_mechanism=["LOGIN"])
if mode == "starttls":
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                            tls_context=context, require_starttls=True,
                            auth_require_tls=True, **common)
else:
    # aiosmtpd's auth_require_tls counts STARTTLS only; here the whole
    # connection is TLS (the log line checks it).
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                            ssl_context=context, auth_require_tls=False, **common)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

const USER: &str = "kumo";
const PASSWORD: &str = "correct-horse-tls";

/// A [`TLS_SERVER`] process; it stops when dropped (its stdin closes).
struct TlsSmtpServer {
    child: Child,
    maildir: PathBuf,
    log: PathBuf,
}

impl TlsSmtpServer {
    fn start(mode: &str, port: u16, dir: &Path, certs: &Certificates) -> TlsSmtpServer {
        use std::io::BufRead;
        let script = dir.join("tls_server.py");
        std::fs::write(&script, TLS_SERVER).unwrap();
        let (maildir, log) = (dir.join("maildir"), dir.join("auth.log"));
        let mut child = Command::new(venv_python())
            .arg(&script)
            .args([mode, &port.to_string()])
            .args([&maildir, &certs.cert, &certs.key])
            .args([USER, PASSWORD])
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        let mut ready = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "the TLS SMTP server did not start");
        TlsSmtpServer {
            child,
            maildir,
            log,
        }
    }

    fn delivered(&self) -> Vec<String> {
        files_in(&self.maildir.join("new"))
    }

    fn auth_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsSmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_trusting(url: String, ca: Option<&Path>) -> Settings {
    let mut config = section(MailAdapter::Smtp, Some(url));
    config.tls_ca_file = ca.map(Path::to_owned);
    Settings::from_config(&config, None, Path::new(".")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_credentials_delivers() {
    let temp = tempfile::tempdir().unwrap();
    let certs = certificates(temp.path());
    let port = free_port();
    let server = TlsSmtpServer::start("starttls", port, temp.path(), &certs);
    let url = format!("smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?tls=required");
    let outbox = Outbox::start(smtp_trusting(url, Some(&certs.ca)));
    outbox.send(message("player@example.com"));
    wait_until("the message arrives", || !server.delivered().is_empty());
    assert!(server.delivered()[0].contains("Code: 012345"));
    // Signed in after STARTTLS, as the server requires.
    assert!(
        server.auth_log().contains("accepted tls=True"),
        "{}",
        server.auth_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_credentials_delivers() {
    let temp = tempfile::tempdir().unwrap();
    let certs = certificates(temp.path());
    let port = free_port();
    let server = TlsSmtpServer::start("implicit", port, temp.path(), &certs);
    let url = format!("smtps://{USER}:{PASSWORD}@127.0.0.1:{port}");
    let outbox = Outbox::start(smtp_trusting(url, Some(&certs.ca)));
    outbox.send(message("player@example.com"));
    wait_until("the message arrives", || !server.delivered().is_empty());
    assert!(
        server.auth_log().contains("accepted tls=True"),
        "{}",
        server.auth_log()
    );
}

/// Without `tls_ca_file` the private authority is not trusted: the TLS
/// handshake fails before any password is sent, and nothing is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_authority_gets_no_password() {
    let temp = tempfile::tempdir().unwrap();
    let certs = certificates(temp.path());
    for mode in ["starttls", "implicit"] {
        let port = free_port();
        let dir = temp.path().join(mode);
        std::fs::create_dir(&dir).unwrap();
        let server = TlsSmtpServer::start(mode, port, &dir, &certs);
        let url = match mode {
            "starttls" => format!("smtp://{USER}:{PASSWORD}@127.0.0.1:{port}?tls=required"),
            _ => format!("smtps://{USER}:{PASSWORD}@127.0.0.1:{port}"),
        };
        let outbox = Outbox::start_with_retries(smtp_trusting(url, None), Vec::new());
        outbox.send(message("player@example.com"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(server.delivered().is_empty(), "{mode}");
        assert_eq!(server.auth_log(), "", "{mode}: no AUTH without trusted TLS");
    }
}

/// What the delivery task logs, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A refused password is logged as a failed send, without the password;
/// nor do the settings print it. This aiosmtpd stops answering after a
/// refused AUTH, so the send also shows that a server gone quiet
/// mid-conversation fails after [`SMTP_TIMEOUT`] (it used to hang for ever,
/// holding a delivery slot: lettre's timeout covers connecting only). The delivery task runs on the runtime's
/// worker threads, so the logs are captured by a global subscriber (each
/// test is a process of its own under nextest; under `cargo test` the
/// other tests' logs land in it too, which changes nothing here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_never_logged() {
    let temp = tempfile::tempdir().unwrap();
    let certs = certificates(temp.path());
    let port = free_port();
    let server = TlsSmtpServer::start("implicit", port, temp.path(), &certs);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other test sets one");
    let wrong = "wrong-horse-battery";
    let url = format!("smtps://{USER}:{wrong}@127.0.0.1:{port}");
    let settings = smtp_trusting(url, Some(&certs.ca));
    assert!(!format!("{settings:?}").contains(wrong));
    let outbox = Outbox::start_with_retries(settings, Vec::new());
    outbox.send(message("player@example.com"));
    let start = Instant::now();
    while !captured.text().contains("giving up") {
        assert!(
            start.elapsed() < SMTP_TIMEOUT + Duration::from_secs(15),
            "logs: {}\nserver: {}",
            captured.text(),
            server.auth_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.auth_log().contains("refused"),
        "{}",
        server.auth_log()
    );
    assert!(server.delivered().is_empty());
    let logs = captured.text();
    assert!(!logs.contains(wrong), "{logs}");
    assert!(!logs.contains(PASSWORD), "{logs}");
}

#[tokio::test]
async fn a_ca_file_needs_tls_and_a_certificate() {
    let temp = tempfile::tempdir().unwrap();
    let ca = temp.path().join("ca.pem");
    let refused = |url: &str, ca: &Path| {
        let mut config = section(MailAdapter::Smtp, Some(url.to_owned()));
        config.tls_ca_file = Some(ca.to_owned());
        Settings::from_config(&config, None, Path::new("."))
            .map(drop)
            .unwrap_err()
    };
    std::fs::write(&ca, "not a certificate").unwrap();
    let e = refused("smtps://u:hunter2@127.0.0.1:465", &ca);
    assert!(matches!(e, MailError::CaFile { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let e = refused("smtps://127.0.0.1:465", &temp.path().join("missing.pem"));
    assert!(matches!(e, MailError::CaFile { .. }), "{e}");
    let certs = certificates(temp.path());
    // Plain SMTP has no TLS to trust the file for: refused, not ignored.
    let e = refused("smtp://u:hunter2@127.0.0.1:25", &certs.ca);
    assert!(e.to_string().contains("no TLS"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}
