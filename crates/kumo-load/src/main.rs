//! `kumo-load`: the HTTP load generator behind `BENCHMARKS.md`.
//!
//! It keeps a fixed number of HTTP/1.1 keep-alive connections busy with
//! requests of one of three workloads:
//! - `--paths FILE`: GET a random line of a file of paths;
//! - `--post PATH --bodies FILE`: POST each line of a file (a JSON body) to
//!   PATH once, in order, until they run out (one-time tokens: sign-ins);
//! - `--refresh PATH --tokens FILE`: each connection keeps one session
//!   going, POSTing `{"refresh_token"}` with the token the last answer
//!   gave (a file line per connection).
//!
//! In one of two modes:
//! - closed loop (no `--rate`): every connection sends its next request as
//!   soon as the last one is answered, which finds the highest throughput;
//! - open loop (`--rate N`): requests fall due on a fixed schedule of N a
//!   second, whatever the server does, and a request's latency counts from
//!   when it was due, not from when a free connection sent it. A closed-loop
//!   tool under-reports the tail because a slow answer delays the requests
//!   behind it ("coordinated omission"); this mode does not.
//!
//! It runs on one thread so that it takes as little as possible of the CPU
//! it shares with the server on a small machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The server, as `host:port` (plain HTTP).
    #[arg(long)]
    addr: String,
    /// A file with one request path per line (`/api/items?page%5Bsize%5D=20`).
    #[arg(long, required_unless_present_any = ["post", "refresh"])]
    paths: Option<PathBuf>,
    /// POST each line of `--bodies` to this path once.
    #[arg(long, requires = "bodies", conflicts_with_all = ["paths", "refresh"])]
    post: Option<String>,
    /// A file with one JSON body per line, for `--post`.
    #[arg(long)]
    bodies: Option<PathBuf>,
    /// Refresh one session per connection at this path, over and over.
    #[arg(long, requires = "tokens", conflicts_with_all = ["paths", "post"])]
    refresh: Option<String>,
    /// A file with one refresh token per line, at least one per
    /// connection, for `--refresh`.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Keep-alive connections, each with at most one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// How long the measured run lasts, in seconds.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Requests a second on a fixed schedule (open loop); without it, as
    /// fast as the server answers (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of closed-loop load before the measured run, not reported.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Prints the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Microseconds from when each answered request was due to its answer.
    latencies_us: Vec<u32>,
    non_2xx: u64,
    /// Requests that failed at the connection (refused, reset, closed).
    errors: u64,
}

/// The schedule every connection draws its requests from.
struct Plan {
    start: Instant,
    end: Instant,
    /// Seconds between due times in the open loop.
    interval: Option<f64>,
    /// The number of the next request to send (open loop).
    next: AtomicU64,
}

impl Plan {
    /// When the next request is due, or `None` once the run is over.
    fn next_due(&self) -> Option<Instant> {
        match self.interval {
            None => Some(Instant::now()).filter(|now| *now < self.end),
            Some(interval) => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                let due = self.start + Duration::from_secs_f64(n as f64 * interval);
                Some(due).filter(|due| *due < self.end)
            }
        }
    }
}

/// What the connections send.
enum Workload {
    Get(Vec<String>),
    PostEach {
        path: String,
        bodies: Vec<String>,
        next: AtomicUsize,
    },
    Refresh {
        path: String,
        tokens: Vec<String>,
    },
}

/// One connection's next request: method, path and body.
enum Next<'w> {
    Get(&'w str),
    Post(&'w str, String),
    Done,
}

impl Workload {
    fn read(args: &Args) -> Result<Workload> {
        let lines = |path: &PathBuf| -> Result<Vec<String>> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines: Vec<String> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect();
            if lines.is_empty() {
                bail!("{} is empty", path.display());
            }
            Ok(lines)
        };
        Ok(match (&args.paths, &args.post, &args.refresh) {
            (_, Some(path), _) => Workload::PostEach {
                path: path.clone(),
                bodies: lines(args.bodies.as_ref().context("--post needs --bodies")?)?,
                next: AtomicUsize::new(0),
            },
            (_, _, Some(path)) => {
                let tokens = lines(args.tokens.as_ref().context("--refresh needs --tokens")?)?;
                if tokens.len() < args.connections {
                    bail!(
                        "--tokens holds {} tokens for {} connections: each connection needs a session of its own",
                        tokens.len(),
                        args.connections
                    );
                }
                Workload::Refresh {
                    path: path.clone(),
                    tokens,
                }
            }
            (Some(paths), _, _) => Workload::Get(lines(paths)?),
            (None, None, None) => bail!("give --paths, --post or --refresh"),
        })
    }
}

/// A small xorshift generator: which path a request takes needs no more.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request; whether it succeeded, and its body when `keep_body`.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    next: Next<'_>,
    keep_body: bool,
) -> Result<(bool, Option<Bytes>)> {
    sender.ready().await?;
    let request = match next {
        Next::Get(path) => hyper::Request::get(path)
            .header(hyper::header::HOST, addr)
            .body(Full::new(Bytes::new()))?,
        Next::Post(path, body) => hyper::Request::post(path)
            .header(hyper::header::HOST, addr)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?,
        Next::Done => bail!("no request to send"),
    };
    let response = sender.send_request(request).await?;
    let ok = response.status().is_success();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((ok, keep_body.then_some(body)))
}

/// The refresh token in a sign-in's or refresh's answer.
fn refresh_token_of(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer["data"]["refresh_token"].as_str().map(str::to_owned)
}

async fn drive(plan: Arc<Plan>, work: Arc<Workload>, addr: Arc<str>, seed: u64) -> Tally {
    let mut tally = Tally::default();
    let mut random = Random(seed | 1);
    let mut sender = None;
    // `--refresh`: this connection's session, by the token to present next.
    let mut refresh_token = match &*work {
        Workload::Refresh { tokens, .. } => tokens.get(seed as usize % tokens.len()).cloned(),
        _ => None,
    };
    while let Some(due) = plan.next_due() {
        tokio::time::sleep_until(due).await;
        if sender.is_none() {
            match connect(&addr).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    tally.errors += 1;
                    continue;
                }
            }
        }
        let next = match &*work {
            Workload::Get(paths) => Next::Get(&paths[random.below(paths.len())]),
            Workload::PostEach { path, bodies, next } => {
                match bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    Some(body) => Next::Post(path, body.clone()),
                    None => Next::Done,
                }
            }
            Workload::Refresh { path, .. } => match &refresh_token {
                Some(token) => Next::Post(path, json!({ "refresh_token": token }).to_string()),
                None => Next::Done,
            },
        };
        if matches!(next, Next::Done) {
            break;
        }
        let refreshing = matches!(&*work, Workload::Refresh { .. });
        let Some(s) = sender.as_mut() else { continue };
        match send(s, &addr, next, refreshing).await {
            Ok((ok, body)) => {
                let us = due.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                tally.non_2xx += u64::from(!ok);
                if refreshing {
                    // A refused refresh ends this connection's session.
                    refresh_token = body.as_deref().and_then(refresh_token_of);
                }
            }
            Err(_) => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
    tally
}

/// One run of `connections` connections for `seconds`.
async fn run(
    args: &Args,
    work: &Arc<Workload>,
    seconds: f64,
    rate: Option<f64>,
) -> Result<(Tally, f64)> {
    let start = Instant::now();
    let plan = Arc::new(Plan {
        start,
        end: start + Duration::from_secs_f64(seconds),
        interval: rate.map(|r| 1.0 / r),
        next: AtomicU64::new(0),
    });
    let addr: Arc<str> = args.addr.as_str().into();
    let tasks: Vec<_> = (0..args.connections)
        .map(|i| {
            let seed = match &**work {
                // Connection i refreshes session i.
                Workload::Refresh { .. } => i as u64,
                _ => 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(i as u64 + 1),
            };
            tokio::spawn(drive(plan.clone(), work.clone(), addr.clone(), seed))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await?;
        total.latencies_us.extend(tally.latencies_us);
        total.non_2xx += tally.non_2xx;
        total.errors += tally.errors;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

/// The latency at quantile `q` (nearest rank) of sorted samples, in ms.
fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    f64::from(sorted_us[rank - 1]) / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let work = Arc::new(Workload::read(&args)?);
    // Written so that NaN is refused too.
    let positive = |x: f64| x > 0.0;
    if args.connections == 0 || !positive(args.seconds) || args.rate.is_some_and(|r| !positive(r)) {
        bail!("--connections, --seconds and --rate must be positive");
    }
    if args.warmup > 0.0 {
        run(&args, &work, args.warmup, None).await?;
    }
    let (mut tally, elapsed) = run(&args, &work, args.seconds, args.rate).await?;
    tally.latencies_us.sort_unstable();
    let requests = tally.latencies_us.len();
    let report = json!({
        "mode": if args.rate.is_some() { "open loop" } else { "closed loop" },
        "connections": args.connections,
        "target_rate": args.rate,
        "requests": requests,
        "seconds": elapsed,
        "rate": requests as f64 / elapsed,
        "non_2xx": tally.non_2xx,
        "errors": tally.errors,
        "p50_ms": quantile_ms(&tally.latencies_us, 0.50),
        "p90_ms": quantile_ms(&tally.latencies_us, 0.90),
        "p99_ms": quantile_ms(&tally.latencies_us, 0.99),
        "p999_ms": quantile_ms(&tally.latencies_us, 0.999),
        "max_ms": quantile_ms(&tally.latencies_us, 1.0),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{requests} requests in {elapsed:.2} s ({:.0}/s, {}), {} non-2xx, {} errors",
            report["rate"].as_f64().unwrap_or_default(),
            report["mode"].as_str().unwrap_or_default(),
            tally.non_2xx,
            tally.errors
        );
        println!(
            "latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            quantile_ms(&tally.latencies_us, 0.50),
            quantile_ms(&tally.latencies_us, 0.90),
            quantile_ms(&tally.latencies_us, 0.99),
            quantile_ms(&tally.latencies_us, 0.999),
            quantile_ms(&tally.latencies_us, 1.0),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let samples: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(quantile_ms(&samples, 0.50), 50.0);
        assert_eq!(quantile_ms(&samples, 0.99), 99.0);
        assert_eq!(quantile_ms(&samples, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
    }

    #[tokio::test]
    async fn an_open_loop_sends_on_schedule_and_stops_at_the_end() {
        let start = Instant::now();
        let plan = Plan {
            start,
            end: start + Duration::from_millis(100),
            interval: Some(0.010),
            next: AtomicU64::new(0),
        };
        let dues: Vec<Instant> = std::iter::from_fn(|| plan.next_due()).collect();
        assert_eq!(dues.len(), 10);
        assert_eq!(dues[3] - start, Duration::from_millis(30));
    }

    /// A server that answers `/missing` with 404, `POST /refresh` as a
    /// refresh would (a new token for a token it has not seen, 401 for a
    /// reused one), and anything else with 200; it counts the POSTs.
    async fn tiny_server() -> (String, Arc<AtomicU64>) {
        use std::collections::HashSet;
        use std::sync::Mutex;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let posts = Arc::new(AtomicU64::new(0));
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        let counter = posts.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (posts, seen) = (counter.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut data = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        data.extend_from_slice(&buf[..n]);
                        while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&data[..end]).into_owned();
                            let length: usize = head
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length: ")
                                        .map(str::to_owned)
                                })
                                .and_then(|n| n.trim().parse().ok())
                                .unwrap_or(0);
                            if data.len() < end + 4 + length {
                                break;
                            }
                            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length])
                                .into_owned();
                            data.drain(..end + 4 + length);
                            let (status, reply) = if head.starts_with("GET /missing ") {
                                ("404 Not Found", "no".to_owned())
                            } else if head.starts_with("POST /refresh ") {
                                posts.fetch_add(1, Ordering::Relaxed);
                                let token = refresh_token_in(&body);
                                if seen.lock().unwrap().insert(token.clone()) {
                                    (
                                        "200 OK",
                                        format!("{{\"data\":{{\"refresh_token\":\"{token}+\"}}}}"),
                                    )
                                } else {
                                    ("401 Unauthorized", "reused".to_owned())
                                }
                            } else {
                                if head.starts_with("POST ") {
                                    posts.fetch_add(1, Ordering::Relaxed);
                                }
                                ("200 OK", "ok".to_owned())
                            };
                            let reply = format!(
                                "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{reply}",
                                reply.len()
                            );
                            if socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, posts)
    }

    fn refresh_token_in(body: &str) -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["refresh_token"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn each_body_is_posted_once_and_the_run_ends_when_they_run_out() {
        let (addr, posts) = tiny_server().await;
        let args = Args::parse_from([
            "kumo-load",
            "--addr",
            &addr,
            "--connections",
            "4",
            "--paths",
            "unused",
        ]);
        let work = Arc::new(Workload::PostEach {
            path: "/sign_in".into(),
            bodies: (0..30).map(|i| format!("{{\"token\":\"t{i}\"}}")).collect(),
            next: AtomicUsize::new(0),
        });
        let (tally, elapsed) = run(&args, &work, 5.0, None).await.unwrap();
        assert_eq!(tally.latencies_us.len(), 30);
        assert_eq!(posts.load(Ordering::Relaxed), 30);
        assert!(
            elapsed < 4.0,
            "it stopped when the bodies ran out: {elapsed} s"
        );
    }

    #[tokio::test]
    async fn each_connection_refreshes_with_the_token_its_last_answer_gave() {
        let (addr, posts) = tiny_server().await;
        let args = Args::parse_from([
            "kumo-load",
            "--addr",
            &addr,
            "--connections",
            "2",
            "--paths",
            "unused",
        ]);
        let work = Arc::new(Workload::Refresh {
            path: "/refresh".into(),
            tokens: vec!["a".into(), "b".into()],
        });
        let (tally, _) = run(&args, &work, 0.3, None).await.unwrap();
        // Presenting a token twice would have been refused.
        assert_eq!(tally.non_2xx, 0);
        assert_eq!(tally.errors, 0);
        assert!(
            tally.latencies_us.len() > 10,
            "{}",
            tally.latencies_us.len()
        );
        assert_eq!(
            posts.load(Ordering::Relaxed),
            tally.latencies_us.len() as u64
        );
    }

    #[tokio::test]
    async fn a_run_counts_every_answer_and_each_non_2xx() {
        let (addr, _) = tiny_server().await;
        let args = Args::parse_from(["kumo-load", "--addr", &addr, "--paths", "unused"]);
        let work = Arc::new(Workload::Get(vec!["/ok".to_owned(), "/missing".to_owned()]));
        let (tally, _) = run(&args, &work, 0.5, Some(200.0)).await.unwrap();
        assert_eq!(
            tally.latencies_us.len(),
            100,
            "200 a second for half a second"
        );
        assert_eq!(tally.errors, 0);
        assert!(
            tally.non_2xx > 20 && tally.non_2xx < 80,
            "{} of 100",
            tally.non_2xx
        );
    }
}
