//! `kumo-load`: the HTTP load generator behind `BENCHMARKS.md`.
//!
//! It keeps a fixed number of HTTP/1.1 keep-alive connections busy with GET
//! requests, each for a random line of a file of paths, in one of two modes:
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use http_body_util::{BodyExt, Empty};
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
    #[arg(long)]
    paths: PathBuf,
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

async fn connect(addr: &str) -> Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(sender: &mut SendRequest<Empty<Bytes>>, addr: &str, path: &str) -> Result<bool> {
    sender.ready().await?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr)
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let ok = response.status().is_success();
    response.into_body().collect().await?;
    Ok(ok)
}

async fn drive(plan: Arc<Plan>, paths: Arc<Vec<String>>, addr: Arc<str>, seed: u64) -> Tally {
    let mut tally = Tally::default();
    let mut random = Random(seed | 1);
    let mut sender = None;
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
        let path = &paths[random.below(paths.len())];
        let Some(s) = sender.as_mut() else { continue };
        match send(s, &addr, path).await {
            Ok(ok) => {
                let us = due.elapsed().as_micros();
                tally
                    .latencies_us
                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                tally.non_2xx += u64::from(!ok);
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
    paths: &Arc<Vec<String>>,
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
            let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(i as u64 + 1);
            tokio::spawn(drive(plan.clone(), paths.clone(), addr.clone(), seed))
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
    let text = std::fs::read_to_string(&args.paths)
        .with_context(|| format!("reading {}", args.paths.display()))?;
    let paths: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if paths.is_empty() {
        bail!("{} holds no paths", args.paths.display());
    }
    // Written so that NaN is refused too.
    let positive = |x: f64| x > 0.0;
    if args.connections == 0 || !positive(args.seconds) || args.rate.is_some_and(|r| !positive(r)) {
        bail!("--connections, --seconds and --rate must be positive");
    }
    let paths = Arc::new(paths);
    if args.warmup > 0.0 {
        run(&args, &paths, args.warmup, None).await?;
    }
    let (mut tally, elapsed) = run(&args, &paths, args.seconds, args.rate).await?;
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

    /// A server that answers `/missing` with 404 and anything else with 200.
    async fn tiny_server() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                            seen.drain(..end + 4);
                            let status = if head.starts_with("GET /missing ") {
                                "404 Not Found"
                            } else {
                                "200 OK"
                            };
                            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok");
                            if socket.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_run_counts_every_answer_and_each_non_2xx() {
        let addr = tiny_server().await;
        let args = Args::parse_from(["kumo-load", "--addr", &addr, "--paths", "unused"]);
        let paths = Arc::new(vec!["/ok".to_owned(), "/missing".to_owned()]);
        let (tally, _) = run(&args, &paths, 0.5, Some(200.0)).await.unwrap();
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
