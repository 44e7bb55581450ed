//! Access-token checks per second on one core: the target is 100,000
//! (issue #4). `cargo bench -p kumo-auth`; results in BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use kumo_auth::access::{AccessKey, Claims};
use kumo_auth::api_key;
use kumo_core::actor::Role;
use std::hint::black_box;
use uuid::Uuid;

const NOW: i64 = 1_800_000_000;

fn access_tokens(c: &mut Criterion) {
    let key = AccessKey::new(b"a benchmark secret of 32 bytes!!");
    let claims = Claims {
        user_id: Uuid::now_v7(),
        session_id: Uuid::now_v7(),
        role: Role::User,
        issued_at: NOW,
        expires_at: NOW + 900,
    };
    let token = key.issue(&claims);
    c.bench_function("access token: verify", |b| {
        b.iter(|| key.verify(black_box(&token), NOW).unwrap())
    });
    let mut forged = token.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    c.bench_function("access token: refuse a forged one", |b| {
        b.iter(|| key.verify(black_box(&forged), NOW).unwrap_err())
    });
    c.bench_function("access token: issue", |b| {
        b.iter(|| key.issue(black_box(&claims)))
    });
    let made = api_key::generate();
    c.bench_function("API key: check form and checksum", |b| {
        b.iter(|| api_key::check(black_box(&made.key)).unwrap())
    });
}

criterion_group!(benches, access_tokens);
criterion_main!(benches);
