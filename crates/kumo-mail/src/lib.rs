//! Kumo's outgoing email.
//!
//! The auth layer hands a [`Message`] to the [`Outbox`] and answers its
//! caller at once: delivery happens on a background task, which retries a
//! failed send with backoff and logs what failed (never the message body,
//! which holds sign-in secrets). So a slow or broken mail server changes no
//! answer and no timing an attacker could read.
//!
//! Adapters (`[mail] adapter` in `kumo.toml`):
//! - `smtp`: an SMTP server, TLS or STARTTLS with credentials, from a URL;
//! - `dev` (the default): kept in memory, newest first, for `/dev/mailbox`;
//! - `file`: one `.eml` file per message in a folder.
//!
//! [`templates`] renders the messages.

pub mod templates;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kumo_core::project::{MailAdapter, MailSection};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

pub use templates::{Kind, Rendered, Templates, Values};

/// The sender when `[mail] from` is not set.
pub const DEFAULT_FROM: &str = "Kumo <no-reply@localhost>";
/// Messages the dev mailbox keeps; older ones are dropped.
pub const DEV_MAILBOX_SIZE: usize = 500;
/// Messages waiting for delivery; past this, new ones are dropped (and
/// logged) rather than held in memory without bound.
const QUEUE_SIZE: usize = 10_000;
/// Deliveries in flight at once.
const CONCURRENT_SENDS: usize = 8;
/// An SMTP conversation (or connecting) that takes longer than this fails
/// (and is retried).
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// An email to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for Message {
    // The body holds sign-in links and codes: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message(to {}, {:?})", self.to, self.subject)
    }
}

impl Message {
    pub fn new(to: &str, rendered: Rendered) -> Message {
        Message {
            to: to.to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        }
    }
}

/// A message in the dev mailbox, as `/dev/mailbox.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// RFC 3339, UTC, milliseconds.
    pub sent_at: String,
}

/// The dev adapter's messages, newest first.
#[derive(Clone, Default)]
pub struct DevMailbox {
    messages: Arc<Mutex<VecDeque<Sent>>>,
}

impl DevMailbox {
    /// Every kept message, newest first.
    pub fn list(&self) -> Vec<Sent> {
        self.lock().iter().cloned().collect()
    }

    fn keep(&self, message: &Message) {
        let mut messages = self.lock();
        messages.push_front(Sent {
            to: message.to.clone(),
            subject: message.subject.clone(),
            text: message.text.clone(),
            html: message.html.clone(),
            sent_at: kumo_core::datetime::canonical_datetime(time::OffsetDateTime::now_utc()),
        });
        messages.truncate(DEV_MAILBOX_SIZE);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Sent>> {
        // A panic while holding the lock leaves a whole list behind: the
        // data is still good.
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("[mail] from `{0}` is not an address: write `Name <address>` or `address`")]
    BadFrom(String),
    #[error("[mail] adapter = \"smtp\" needs the server's URL in [mail] url or SMTP_URL")]
    NoSmtpUrl,
    #[error(
        "the SMTP URL is not valid ({0}); e.g. smtps://user:pass@host:465 or smtp://host:587?tls=required"
    )]
    BadSmtpUrl(String),
    #[error("`{0}` is not an email address")]
    BadRecipient(String),
    #[error("could not send: {0}")]
    Send(String),
    #[error("[mail] tls_ca_file {path}: {problem}")]
    CaFile { path: PathBuf, problem: String },
}

/// How to deliver, from `[mail]` (and `SMTP_URL`, which wins over
/// `[mail] url`). `root` resolves the file adapter's relative folder.
/// Made inside a tokio runtime: the SMTP connection pool lives on it.
pub struct Settings {
    pub from: Mailbox,
    pub delivery: Delivery,
}

impl std::fmt::Debug for Settings {
    // The SMTP URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Settings(from {})", self.from)
    }
}

pub enum Delivery {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dev,
    File(PathBuf),
}

impl Settings {
    pub fn from_config(
        section: &MailSection,
        smtp_url_env: Option<String>,
        root: &std::path::Path,
    ) -> Result<Settings, MailError> {
        let from_text = section.from.as_deref().unwrap_or(DEFAULT_FROM);
        let from = from_text
            .parse::<Mailbox>()
            .map_err(|_| MailError::BadFrom(from_text.to_owned()))?;
        let delivery = match section.adapter {
            MailAdapter::Dev => Delivery::Dev,
            MailAdapter::File => {
                Delivery::File(root.join(section.dir.clone().unwrap_or_else(|| "data/mail".into())))
            }
            MailAdapter::Smtp => {
                let url = smtp_url_env
                    .filter(|u| !u.is_empty())
                    .or_else(|| section.url.clone())
                    .ok_or(MailError::NoSmtpUrl)?;
                // The error text of a URL parser can quote the URL, and
                // with it the password: only the kind of mistake is kept.
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
                    .map_err(|e| MailError::BadSmtpUrl(smtp_url_problem(&e)))?;
                if let Some(file) = &section.tls_ca_file {
                    builder = builder.tls(tls_trusting(&url, &root.join(file))?);
                }
                Delivery::Smtp(builder.timeout(Some(SMTP_TIMEOUT)).build())
            }
        };
        Ok(Settings { from, delivery })
    }
}

/// The TLS the SMTP URL asks for (`smtps://` from the start,
/// `?tls=required` or `?tls=opportunistic` by STARTTLS), trusting the
/// certificate authorities in the PEM file `ca_file` as well as the usual
/// public ones. The server's certificate and name are checked as without
/// it. A plain `smtp://` URL has no TLS to trust them for: refused, rather
/// than sending in clear a mail that was meant to be protected.
fn tls_trusting(url: &str, ca_file: &std::path::Path) -> Result<Tls, MailError> {
    let problem = |problem: &str| MailError::CaFile {
        path: ca_file.to_owned(),
        problem: problem.to_owned(),
    };
    // lettre parsed this URL already; a failure here is the same mistake.
    let bad_url = || MailError::BadSmtpUrl("check the scheme, host, port and tls parameter".into());
    let parsed = url::Url::parse(url).map_err(|_| bad_url())?;
    let host = parsed.host_str().ok_or_else(bad_url)?.to_owned();
    let mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let pem = std::fs::read(ca_file).map_err(|e| problem(&e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(problem("holds no PEM certificate"));
    }
    let certificate =
        Certificate::from_pem(&pem).map_err(|_| problem("is not a PEM certificate file"))?;
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(certificate)
        .build_rustls()
        .map_err(|e| problem(&e.to_string()))?;
    match (parsed.scheme(), mode.as_deref()) {
        ("smtps", _) => Ok(Tls::Wrapper(parameters)),
        ("smtp", Some("required")) => Ok(Tls::Required(parameters)),
        ("smtp", Some("opportunistic")) => Ok(Tls::Opportunistic(parameters)),
        _ => Err(problem(
            "the SMTP URL uses no TLS: use smtps:// or smtp://…?tls=required",
        )),
    }
}

fn smtp_url_problem(error: &lettre::transport::smtp::Error) -> String {
    let text = error.to_string();
    if text.contains("scheme") {
        "the scheme must be smtp or smtps".into()
    } else {
        "check the scheme, host, port and tls parameter".into()
    }
}

/// Sends messages in the background.
#[derive(Clone)]
pub struct Outbox {
    queue: mpsc::Sender<Message>,
    dev: Option<DevMailbox>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

/// When a failed delivery is tried again: after 1, 5 and 30 seconds.
pub const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];

impl Outbox {
    /// Starts the delivery task (on the current tokio runtime).
    pub fn start(settings: Settings) -> Outbox {
        Outbox::start_with_retries(settings, RETRY_DELAYS.to_vec())
    }

    /// [`Outbox::start`] with other retry delays (tests use short ones).
    pub fn start_with_retries(settings: Settings, retry_delays: Vec<Duration>) -> Outbox {
        let (queue, mut incoming) = mpsc::channel::<Message>(QUEUE_SIZE);
        let dev = matches!(settings.delivery, Delivery::Dev).then(DevMailbox::default);
        let sender = Arc::new(Sender {
            from: settings.from,
            delivery: settings.delivery,
            retry_delays,
        });
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(CONCURRENT_SENDS));
            while let Some(message) = incoming.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    sender.deliver_with_retries(message).await;
                    drop(slot);
                });
            }
        });
        Outbox { queue, dev }
    }

    /// Queues `message`. Never fails the caller: a full queue is logged.
    /// The dev mailbox keeps it at once, so it lists messages in the order
    /// they were sent.
    pub fn send(&self, message: Message) {
        if let Some(dev) = &self.dev {
            dev.keep(&message);
            return;
        }
        if let Err(e) = self.queue.try_send(message) {
            let message = match &e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            tracing::error!(to = %message.to, subject = %message.subject, "mail dropped: the outbox is full or stopped");
        }
    }

    /// The dev mailbox, when the adapter is `dev`.
    pub fn dev_mailbox(&self) -> Option<&DevMailbox> {
        self.dev.as_ref()
    }
}

struct Sender {
    from: Mailbox,
    delivery: Delivery,
    retry_delays: Vec<Duration>,
}

impl Sender {
    async fn deliver_with_retries(&self, message: Message) {
        let mut delays = self.retry_delays.iter();
        loop {
            match self.deliver(&message).await {
                Ok(()) => return,
                Err(e) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(to = %message.to, subject = %message.subject, error = %e, retry_in = ?delay, "mail not sent; will retry");
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        tracing::error!(to = %message.to, subject = %message.subject, error = %e, "mail not sent; giving up");
                        return;
                    }
                },
            }
        }
    }

    async fn deliver(&self, message: &Message) -> Result<(), MailError> {
        let to = message
            .to
            .parse::<Mailbox>()
            .map_err(|_| MailError::BadRecipient(message.to.clone()))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                message.html.clone(),
            ))
            .map_err(|e| MailError::Send(e.to_string()))?;
        match &self.delivery {
            // lettre's own timeout covers connecting only: a server that
            // stops answering mid-conversation (as one may after a refused
            // password) would hold this send, and one of the
            // CONCURRENT_SENDS slots, for ever.
            Delivery::Smtp(smtp) => {
                match tokio::time::timeout(SMTP_TIMEOUT, smtp.send(email)).await {
                    Ok(sent) => sent.map(drop).map_err(|e| MailError::Send(e.to_string())),
                    Err(_) => Err(MailError::Send(format!(
                        "the SMTP server did not answer within {} s",
                        SMTP_TIMEOUT.as_secs()
                    ))),
                }
            }
            Delivery::File(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| MailError::Send(format!("{}: {e}", dir.display())))?;
                AsyncFileTransport::<Tokio1Executor>::new(dir)
                    .send(email)
                    .await
                    .map(drop)
                    .map_err(|e| MailError::Send(e.to_string()))
            }
            // Kept by `Outbox::send`; never queued.
            Delivery::Dev => Ok(()),
        }
    }
}
