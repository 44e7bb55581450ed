//! End-to-end tests of the `kumo` binary: every command as a user runs it,
//! against real SQLite files and a real PostgreSQL server.

mod admin_browser;
mod codegen;
mod project;
mod rate_limit;
mod serve;
mod services;
mod sign_in;
mod users;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tempfile::TempDir;

/// The PostgreSQL server tests use (trust auth), without a database name.
pub fn postgres_base() -> String {
    std::env::var("KUMO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A `kumo` invocation in a scratch directory.
pub struct Kumo {
    pub dir: TempDir,
    /// `DATABASE_URL` for every command, when testing on PostgreSQL.
    pub database_url: Option<String>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails(self) -> Self {
        assert_ne!(self.code, 0, "expected failure\nstdout:\n{}", self.stdout);
        self
    }
}

impl Default for Kumo {
    fn default() -> Self {
        Self::new()
    }
}

impl Kumo {
    pub fn new() -> Self {
        Kumo {
            dir: TempDir::new().expect("temp dir"),
            database_url: None,
        }
    }

    /// A scratch directory whose projects use a fresh PostgreSQL database.
    pub fn postgres() -> Self {
        let name = format!("kumo_test_{}", uuid::Uuid::new_v4().simple());
        Kumo {
            dir: TempDir::new().expect("temp dir"),
            database_url: Some(format!("{}/{name}", postgres_base())),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kumo"));
        cmd.args(args).current_dir(self.dir.path());
        cmd.env_remove("DATABASE_URL").env_remove("KUMO_PROJECT");
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run kumo"))
    }

    /// `kumo new app`, then the seed's commands up to a set-up database.
    pub fn set_up_project(&self) {
        self.run(&["new", "app"]).ok();
        self.run(&["auth", "add-strategy", "magic_link", "--project", "app"])
            .ok();
        self.run(&["codegen", "initial", "--project", "app"]).ok();
        self.run(&["db", "create", "--project", "app"]).ok();
        self.run(&["setup", "--project", "app"]).ok();
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for Kumo {
    fn drop(&mut self) {
        // Drop the PostgreSQL database the test made, if any project exists.
        if self.database_url.is_some() && self.path("app/kumo.toml").exists() {
            let _ = self.command(&["db", "drop", "--project", "app"]).output();
        }
    }
}

/// A running `kumo serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub banner: String,
}

impl Server {
    #[allow(clippy::zombie_processes)] // every early return waits; the rest is waited on in Drop
    pub fn start(mut cmd: Command) -> Result<Server, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kumo serve");
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let _ = child.wait();
                return Err(format!("{banner}{err}"));
            }
            banner.push_str(&line);
            if let Some(rest) = line.split("http://").nth(1)
                && line.contains("is serving")
            {
                {
                    let addr = rest.split_whitespace().next().unwrap().to_string();
                    // Keep draining stdout so the server never blocks on a full pipe.
                    std::thread::spawn(move || {
                        let mut sink = String::new();
                        let _ = reader.read_to_string(&mut sink);
                    });
                    return Ok(Server {
                        child,
                        addr,
                        banner,
                    });
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET, so the tests need no HTTP client crate.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let response = http_request(addr, path, &[]);
    (response.status, response.body)
}

pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lowercased: `retry-after: 1`.
    pub headers: Vec<String>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(name)?.strip_prefix(": "))
    }
}

/// A GET with extra request headers.
pub fn http_request(addr: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_exchange(addr, "GET", path, headers, "")
}

/// A POST of a JSON body, as a game (not a browser) sends it.
pub fn http_post_json(addr: &str, path: &str, body: &str) -> HttpResponse {
    http_exchange(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
}

/// A POST with extra request headers (a browser's `Origin`, a token).
pub fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    http_exchange(addr, "POST", path, headers, body)
}

fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .map(|l| match l.split_once(':') {
            Some((name, value)) => format!("{}: {}", name.to_lowercase(), value.trim()),
            None => l.to_owned(),
        })
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
