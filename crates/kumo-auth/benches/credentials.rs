//! Credential checks on one core: access tokens (the target is 100,000
//! checks per second, issue #4), API-key checksums, and Argon2id password
//! checks at the default cost. `cargo bench -p kumo-auth`; results in
//! BENCHMARKS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use kumo_auth::access::{AccessKey, Claims};
use kumo_auth::api_key;
use kumo_auth::password::{self, Cost, Passwords};
use kumo_auth::refresh::RefreshKey;
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
    let refresh = RefreshKey::new(b"a benchmark secret of 32 bytes!!");
    let refresh_token = refresh.token(claims.session_id, 7);
    c.bench_function("refresh token: open", |b| {
        b.iter(|| refresh.open(black_box(&refresh_token)).unwrap())
    });
    let made = api_key::generate();
    c.bench_function("API key: check form and checksum", |b| {
        b.iter(|| api_key::check(black_box(&made.key)).unwrap())
    });
}

fn passwords(c: &mut Criterion) {
    let passwords = Passwords::new(Cost::default()).unwrap();
    let stored = passwords.hash("violet-tangent-harbor-41").unwrap();
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.bench_function("verify (Argon2id, 19 MiB, t=2, p=1)", |b| {
        b.iter(|| passwords.verify(black_box("violet-tangent-harbor-41"), &stored))
    });
    group.bench_function("strength check (zxcvbn)", |b| {
        b.iter(|| password::refusal(black_box("violet-tangent-harbor-41"), &[]))
    });
    group.finish();
}

criterion_group!(benches, access_tokens, passwords);
criterion_main!(benches);
