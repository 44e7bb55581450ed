//! Sign-in end to end, every part a real process: `kumo serve` mailing
//! through a real SMTP server (aiosmtpd from `.venv/`, installed by
//! scripts/python-tools.sh) into a maildir. A player asks for a link, the
//! mail arrives, its page is opened and its button pressed, and the game
//! that asked (a second client, polling) gets its session; then the code
//! path.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{Kumo, Server, http_post, http_post_json, http_request};

#[path = "../support/smtp_sink.rs"]
mod smtp_sink;

use smtp_sink::{SmtpSink, free_port};

/// The text of the mail to `to` that arrived in the maildir, with
/// quoted-printable's soft line breaks joined.
fn mail_to(maildir: &Path, to: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(entries) = std::fs::read_dir(maildir.join("new")) {
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.starts_with("To: ") && l.contains(to))
                {
                    return text
                        .replace("=\r\n", "")
                        .replace("=\n", "")
                        .replace("=3D", "=");
                }
            }
        }
        assert!(Instant::now() < until, "no mail to {to} arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_player_signs_in_through_real_mail_by_link_poll_and_code() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    let (smtp_port, port) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{port}");
    let config = k
        .read("app/kumo.toml")
        .replace(
            "public_url = \"http://127.0.0.1:4000\"",
            &format!("public_url = \"{public}\""),
        )
        .replace(
            "adapter = \"dev\"",
            &format!("adapter = \"smtp\"\nurl = \"smtp://127.0.0.1:{smtp_port}\""),
        );
    assert!(
        config.contains(&public) && config.contains("adapter = \"smtp\""),
        "{config}"
    );
    k.write("app/kumo.toml", &config);
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    k.run(&["setup", "--project", "app"]).ok();
    let maildir = k.path("maildir");
    let _smtp = SmtpSink::start(smtp_port, &maildir);
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(k.command(&["serve", "--addr", &addr, "--project", "app"]))
        .expect("serve starts");
    assert!(!server.banner.contains("/dev/mailbox"), "{}", server.banner);

    // The game asks for a link for its player.
    let r = http_post_json(
        &addr,
        "/auth/magic_link/request",
        r#"{"email":"Player@Example.com"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let poll = json(&r.body)["poll"].clone();
    let poll_body = serde_json::json!({ "id": poll["id"], "secret": poll["secret"] }).to_string();
    assert_eq!(
        http_post_json(&addr, "/auth/magic_link/poll", &poll_body).status,
        202
    );

    // The mail arrives through SMTP, with the link and the code.
    let mail = mail_to(&maildir, "player@example.com");
    let prefix = format!("{public}/auth/magic_link/");
    let at = mail
        .find(&prefix)
        .unwrap_or_else(|| panic!("no link in {mail}"))
        + prefix.len();
    let token: String = mail[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "{token}");
    let path = format!("/auth/magic_link/{token}");

    // Opening the link shows a button and uses nothing up.
    let page = http_request(&addr, &path, &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<form method=\"post\">"),
        "{}",
        page.body
    );
    assert_eq!(
        http_post_json(&addr, "/auth/magic_link/poll", &poll_body).status,
        202
    );

    // Pressing it signs the browser in.
    let pressed = http_post(&addr, &path, &[("origin", &public)], "");
    assert_eq!(pressed.status, 200, "{}", pressed.body);
    assert!(pressed.body.contains("Return to"), "{}", pressed.body);
    assert!(
        pressed
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("kumo_session="))
    );

    // The game, another client, collects its own session.
    let r = http_post_json(&addr, "/auth/magic_link/poll", &poll_body);
    assert_eq!(r.status, 200, "{}", r.body);
    let session = json(&r.body)["data"].clone();
    assert_eq!(session["user"]["email"], "player@example.com");
    let bearer = format!("Bearer {}", session["access_token"].as_str().unwrap());
    let me = http_request(&addr, "/auth/me", &[("authorization", &bearer)]);
    assert_eq!(me.status, 200, "{}", me.body);

    // The code path, for a second player.
    let r = http_post_json(
        &addr,
        "/auth/magic_link/request",
        r#"{"email":"second@example.com"}"#,
    );
    assert_eq!(r.status, 200);
    let mail = mail_to(&maildir, "second@example.com");
    // The code follows the text's "this code in the game:" (headers hold
    // digit runs too).
    let after = mail
        .split_once("this code in the game:")
        .unwrap_or_else(|| panic!("no code line in {mail}"))
        .1;
    let code = after
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {mail}"))
        .to_owned();
    let r = http_post_json(
        &addr,
        "/auth/magic_link/sign_in",
        &format!(r#"{{"email":"second@example.com","code":"{code}"}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(json(&r.body)["data"]["user"]["email"], "second@example.com");
    drop(server);
}
