//! The admin in a real browser: headless Chromium, driven by
//! `tests/browser/admin.mjs` (playwright-core), against a live `kumo serve`
//! on a fresh SQLite project. This test makes the project (the template's
//! avatars, with their `publish` action), an admin and a plain user with
//! `kumo user create`, and 120 seeded avatars, so lists need three pages;
//! the script then signs in by magic link, pages, sorts and filters a list,
//! creates a record through a refused save, edits it, runs an action, is
//! refused a forged form, deletes it, signs out, and sees a `user` refused.
//!
//! Chromium (Debian's) and `tests/browser/node_modules/` come from
//! `scripts/browser-tools.sh`, which `scripts/test` runs; without them this
//! test fails, saying so. One screenshot per page is kept in
//! `$KUMO_ARTIFACTS/admin-screenshots/` when `KUMO_ARTIFACTS` is set, else
//! in `admin-screenshots/` beside the build's `debug/` folder.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Kumo, Server};

const ADMIN: &str = "admin@example.com";
const PLAYER: &str = "player@example.com";
/// More than two pages of 50.
const AVATARS: usize = 120;
/// The whole scenario takes seconds; this only stops a hung browser.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `command -v name`, as the shell finds it.
fn command_path(name: &str) -> Option<String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !path.is_empty()).then_some(path)
}

/// Where the screenshots go: `$KUMO_ARTIFACTS/admin-screenshots`, else
/// beside the build's `debug/` (the `kumo` binary's folder's parent).
fn screenshot_dir() -> PathBuf {
    match std::env::var_os("KUMO_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir).join("admin-screenshots"),
        None => Path::new(env!("CARGO_BIN_EXE_kumo"))
            .parent()
            .and_then(Path::parent)
            .expect("the kumo binary lives in <target>/<profile>/")
            .join("admin-screenshots"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A seed file: the account the avatars belong to, and the avatars, public
/// so the admin may read them (the template's read policy).
fn seeds() -> String {
    let mut toml = String::from("[[user]]\nkey = \"seeder\"\nemail = \"seeder@example.com\"\n");
    for i in 1..=AVATARS {
        write!(
            toml,
            "\n[[avatar]]\nkey = \"a{i:03}\"\nname = \"Seeded {i:03}\"\nslug = \"seeded-{i:03}\"\n\
             is_public = true\npolycount = {}\nuploader = \"seeder\"\n",
            i * 10
        )
        .unwrap();
    }
    toml
}

#[test]
fn the_admin_works_in_headless_chromium() {
    let browser_dir = repo().join("tests/browser");
    let missing = |what: &str| {
        panic!("{what} is missing: run scripts/browser-tools.sh (scripts/test runs it)")
    };
    let Some(chromium) = command_path("chromium") else {
        missing("chromium (Debian's package)")
    };
    let Some(node) = command_path("node") else {
        missing("node")
    };
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        missing("tests/browser/node_modules/playwright-core");
    }

    // A fresh project on SQLite, served on a free port its links name.
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
        .ok();
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let config = k.read("app/kumo.toml").replace(
        "public_url = \"http://127.0.0.1:4000\"",
        &format!("public_url = \"{public}\""),
    );
    assert!(
        config.contains(&public) && config.contains("adapter = \"dev\""),
        "{config}"
    );
    k.write("app/kumo.toml", &config);
    k.write("app/seeds/browser.toml", &seeds());
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    let setup = k.run(&["setup", "--project", "app"]).ok();
    assert!(
        setup
            .stdout
            .contains(&format!("{} row(s) inserted", AVATARS + 1)),
        "{}",
        setup.stdout
    );
    k.run(&[
        "user",
        "create",
        ADMIN,
        "--role",
        "admin",
        "--project",
        "app",
    ])
    .ok();
    k.run(&["user", "create", PLAYER, "--project", "app"]).ok();
    let addr = format!("127.0.0.1:{port}");
    // The dev mail adapter keeps the mails for /dev/mailbox.json.
    let server = Server::start(k.command(&["serve", "--addr", &addr, "--project", "app"]))
        .expect("serve starts");

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let started = Instant::now();
    let mut script = Command::new(node)
        .arg(browser_dir.join("admin.mjs"))
        .current_dir(&browser_dir)
        .env("KUMO_URL", &public)
        .env("KUMO_ADMIN_EMAIL", ADMIN)
        .env("KUMO_USER_EMAIL", PLAYER)
        .env("KUMO_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    // Wait with a limit, reading the pipes on threads so a chatty browser
    // never blocks on a full one.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(script.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(script.stderr.take().map(|p| Box::new(p) as _));
    let status = loop {
        if let Some(status) = script.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = script.kill();
            let _ = script.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    drop(server);
    assert!(
        status.is_some_and(|s| s.success()),
        "tests/browser/admin.mjs {} after {took:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        match status {
            Some(s) => format!("failed ({s})"),
            None => "timed out".to_owned(),
        }
    );
    eprintln!(
        "admin browser scenario: {took:?}; screenshots in {}",
        shots.display()
    );

    // One non-empty PNG per page.
    let pngs: Vec<_> = std::fs::read_dir(&shots)
        .unwrap_or_else(|e| panic!("{}: {e}", shots.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    for name in [
        "sign-in",
        "link-sent",
        "dashboard",
        "list",
        "list-last-page",
        "list-filtered",
        "new-invalid",
        "record",
        "edit",
        "record-after-action",
        "confirm-delete",
        "forged-refused",
        "user-refused",
    ] {
        let png = pngs
            .iter()
            .find(|p| {
                p.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.split_once('-'))
                    .is_some_and(|(_, rest)| rest == name)
            })
            .unwrap_or_else(|| panic!("no screenshot of {name} in {pngs:?}"));
        let bytes = std::fs::read(png).unwrap();
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"),
            "{} is not a PNG of a page",
            png.display()
        );
    }
}
