//! The API fuzzed from its own OpenAPI document by schemathesis (installed
//! into `.venv/` by scripts/python-tools.sh): the real server on a TCP
//! socket with the harness' resources plus `review` (every kind of value,
//! create and destroy actions, restrict and nullify), seeded records, and
//! generated valid and invalid requests to every operation, made as each
//! kind of caller ([`Caller`]: an admin, a plain user, anonymously). The
//! test fails on any 5xx; on any status code, content type, body or
//! required header the document does not describe; on a request the
//! document calls invalid that is not refused (`negative_data_rejection`);
//! and on one it calls valid that is refused (`positive_data_acceptance`),
//! except for the refusals the document can only state in prose
//! ([`HOOKS`]).
//!
//! Schemathesis runs three phases: *coverage* (boundary and wrong-type
//! values for every parameter and body field, deterministic; for the admin
//! only, see [`Caller::coverage`]), *fuzzing* (random requests,
//! [`MAX_EXAMPLES`] per operation) and *stateful* (chains following the
//! document's links: create, then read, change, act on and delete what was
//! created). Its configuration points half the generated ids at seeded
//! records, so requests reach existing rows and not only 404s.
//!
//! The `/auth/…` routes are fuzzed on a server of their own with the real
//! auth layer ([`fuzz_auth`]): the fake tokens above sign nobody in there.
//!
//! `KUMO_FUZZ_ARGS` adds schemathesis arguments for a longer or narrower run
//! by hand, e.g. `KUMO_FUZZ_ARGS="--max-examples 500 --include-path-regex avatars"`.

use std::fmt::Write as _;
use std::time::Instant;

use axum::http::StatusCode;
use kumo_db::sql::Dialect;
use serde_json::json;
use tokio::net::TcpListener;

use crate::both;
use crate::harness::{AVATAR, COMMENT, TestApi};
use crate::openapi::python_tool;

/// Random test cases per operation in the fuzzing phase. With the fixed
/// seed the run is the same every time: about a minute per database for
/// the admin, half that for each other caller.
const MAX_EXAMPLES: u32 = 20;
const SEED: u64 = 20261121;

/// What schemathesis checks on every answer: no 5xx; the status, content
/// type, body and headers are ones the document describes; a request the
/// document calls invalid is refused (4xx) and one it calls valid is not
/// (except the refusals [`HOOKS`] lets through).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,response_headers_conformance,\
                      negative_data_rejection,positive_data_acceptance";

pub(crate) const REVIEW: &str = r#"
[resource]
name = "review"

[attributes]
stars     = { type = "integer", required = true, min = 1, max = 5 }
code      = { type = "string", unique = true, pattern = '^[A-Z]{3}-[0-9]{2}$' }
played_on = { type = "date" }
build     = { type = "uuid" }
weight    = { type = "float", min = 0.0, max = 1.0 }
scores    = { type = "array", of = "integer" }
days      = { type = "array", of = "date" }

[relationships]
avatar   = { belongs_to = "avatar", required = true, on_delete = "restrict" }
reviewer = { belongs_to = "user", on_delete = "nullify" }

[policies]
read    = "true"
create  = "actor != null"
update  = "actor.id == record.reviewer_id"
destroy = "actor.id == record.reviewer_id"

[actions.quick]
type = "create"
accept = ["avatar", "reviewer", "code"]
set = { stars = 5 }
policy = "actor != null"

[actions.retract]
type = "destroy"
policy = "actor.id == record.reviewer_id || actor.role == 'admin'"
"#;

/// A schemathesis hook (Python) that drops a *valid request refused*
/// failure (`positive_data_acceptance`) when the refusal is one the
/// document states in prose but a JSON Schema cannot: a key naming no
/// record the caller may read (422, like a dangling foreign key); text
/// holding NUL or a date in the year 0000 (PostgreSQL stores neither); a
/// filter's datetime finer than a millisecond; an `in` filter's
/// comma-separated values, each of which must be a value of the field
/// (the schema types the list as one string); a page cursor, opaque and
/// signed, that no generator can forge; and more than one of
/// `page[after]`, `page[before]`, `page[offset]` (parameters are described
/// one by one). Every other refusal of a valid request fails the run.
///
/// It also drops an *invalid request accepted* failure
/// (`negative_data_rejection`) whose invalid query parameter was never
/// sent: schemathesis serializes a `filter[…]` object holding only unknown
/// keys as nothing, so the server saw a valid request.
const HOOKS: &str = r#"
import re
import urllib.parse

import schemathesis

DOCUMENTED = (
    "text cannot contain the NUL character",
    "the year 0000 cannot be stored",
    "is outside the years 0001",
    "is more precise than a millisecond",
    "not a cursor from this list",
    # user.email must be an address that can be mailed (api.rs
    # account_fields), which a JSON Schema string cannot say.
    "is longer than 254 characters",
    # session.revoked_at may be set (an admin revokes a session) but not
    # cleared: an update body's schema cannot say "not null here" for a
    # field that is null on live sessions.
    "cannot be cleared: a revoked session stays signed out",
    # The auth routes' refusals their descriptions state: a new password
    # zxcvbn finds easy to guess, an address that cannot be mailed (JSON
    # Schema's `email` format takes more), an API key's expiry in the past,
    # an address change to the address the account has (the generator
    # repeats the values it sent before).
    "is too easy to guess",
    "is not an email address",
    "must be in the future",
    "is already this account's address",
    # JSON Schema's `format` is an annotation generators need not honour
    # (an empty string is a schema-valid `date-time`); the server refuses
    # what is not one, with 422.
    "must be an RFC 3339 date and time",
)

def sent(failure, response):
    """Whether the invalid query parameter reached the server: an object
    holding only keys the document does not know can serialize to nothing,
    and then the server answered a valid request."""
    found = re.search(r"parameter `([^`]+)` in query", failure.message)
    if not found:
        return True
    query = urllib.parse.unquote(urllib.parse.urlsplit(response.request.url).query)
    name = found.group(1)
    return any(pair.startswith((name + "=", name + "[")) for pair in query.split("&"))

def documented(key, message):
    if any(text in message for text in DOCUMENTED):
        return True
    # A password change must name the account's password, which no
    # generator knows (or the account has none yet).
    if key == "current_password":
        return True
    if message.startswith("no ") and " with id " in message:
        return True
    return key.endswith("[in]")

@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.code == "ST201":
        return sent(failure, response)
    if failure.code != "ST202":
        return True
    try:
        error = response.json()["error"]
    except Exception:
        return True
    if error.get("message") == "use only one of page[after], page[before] and page[offset]":
        return False
    fields = error.get("fields") or {}
    refusals = [(key, m) for key, messages in fields.items() for m in messages]
    return not refusals or not all(documented(key, m) for key, m in refusals)
"#;

/// The ids of the seeded records, by plural.
struct Seeded {
    ids: Vec<(&'static str, Vec<String>)>,
}

/// Users (the fuzzer acts as `root`, an admin), public and private avatars
/// with every kind of value, comments and reviews on them.
async fn seed(api: &TestApi) -> Seeded {
    let mut users = Vec::new();
    for (name, role) in [("root", "admin"), ("alice", "user"), ("bob", "coordinator")] {
        let token = api.user(name, role).await;
        users.push(api.user_id(&token));
    }
    let (mut avatars, mut comments, mut reviews) = (Vec::new(), Vec::new(), Vec::new());
    for (n, owner) in ["root", "alice", "bob"].into_iter().enumerate() {
        let owner_id = api.user_id(owner);
        let r = api
            .send(
                "POST",
                "/api/avatars",
                Some(owner),
                Some(json!({
                    "name": format!("avatar {n}"),
                    "uploader_id": owner_id,
                    "is_public": n != 1,
                    "polycount": 1000 * n,
                    "rating": 2.5,
                    "tags": ["metal", format!("tag{n}")],
                    "metadata": {"rig": {"bones": n}},
                    "released_at": "2026-03-01T12:00:00Z",
                    "secret_note": "hidden",
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let avatar = r.id();
        let r = api
            .send(
                "POST",
                "/api/comments",
                Some(owner),
                Some(json!({"body": "nice", "avatar_id": avatar, "author_id": owner_id})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        comments.push(r.id());
        let r = api
            .send(
                "POST",
                "/api/reviews",
                Some(owner),
                Some(json!({
                    "stars": n + 1, "code": format!("ABC-{n:02}"), "played_on": "2026-02-03",
                    "build": "6f1c2a3e-0000-4000-8000-000000000001", "weight": 0.5,
                    "scores": [1, 2], "days": ["2026-01-01"],
                    "avatar_id": avatar, "reviewer_id": owner_id
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        reviews.push(r.id());
        avatars.push(avatar);
    }
    Seeded {
        ids: vec![
            ("users", users),
            ("avatars", avatars),
            ("comments", comments),
            ("reviews", reviews),
        ],
    }
}

/// schemathesis.toml for one run: seed and example count, the seeded ids as
/// dictionaries for `{id}` and for the `belongs_to` keys of bodies, and the
/// coverage phase left out for the auth layer's own resources (their lists
/// take as long as all the others together, through the same code).
fn config(seeded: &Seeded, caller: Caller) -> String {
    let mut toml = format!(
        "seed = {SEED}\nhooks = \"kumo_hooks.py\"\n\n[generation]\nmax-examples = {MAX_EXAMPLES}\n\
         database = \"none\"\n\n[phases.coverage]\nenabled = {}\n\n[dictionaries]\n",
        caller.coverage()
    );
    for (plural, ids) in &seeded.ids {
        writeln!(toml, "{plural} = {{ values = {ids:?} }}").unwrap();
    }
    toml.push_str("\n[parameters]\n");
    for (key, plural) in [
        ("uploader_id", "users"),
        ("author_id", "users"),
        ("reviewer_id", "users"),
        ("avatar_id", "avatars"),
    ] {
        writeln!(
            toml,
            "\"body.{key}\" = {{ dictionary = \"{plural}\", probability = 0.5 }}"
        )
        .unwrap();
    }
    for (plural, _) in &seeded.ids {
        write!(
            toml,
            "\n[[operations]]\ninclude-path-regex = '^/api/{plural}/\\{{id\\}}'\n\
             parameters = {{ \"path.id\" = {{ dictionary = \"{plural}\", probability = 0.5 }} }}\n"
        )
        .unwrap();
    }
    toml.push_str(
        "\n[[operations]]\n\
         include-path-regex = '^/api/(api_keys|audit_events|auth_tokens|external_identities|sessions)'\n\
         phases.coverage.enabled = false\n\
         \n[[operations]]\n\
         include-operation-id-regex = '\\.list$'\n\
         phases.coverage.generation.mode = 'positive'\n",
    );
    toml
}

/// Who schemathesis acts as. Each sees a different API: an admin may do
/// everything, a user (`alice`, role `user`) what the policies give her
/// (other users' private avatars are 404s, their records 403s), and an
/// anonymous caller mostly 401s and the public records. Every answer must
/// still be one the document describes.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Admin,
    User,
    Anonymous,
}

impl Caller {
    /// The test harness' token for the caller (a seeded user's name).
    fn token(self) -> Option<&'static str> {
        match self {
            Caller::Admin => Some("root"),
            Caller::User => Some("alice"),
            Caller::Anonymous => None,
        }
    }

    /// Whether the coverage phase runs. It is deterministic and takes most
    /// of a run's time; what it varies (boundary and wrong-type values of
    /// every parameter and field) is checked the same way whoever asks, so
    /// it runs for the admin, who passes every policy and so reaches every
    /// check behind them. The others get the fuzzing and stateful phases,
    /// which show their refusals (401, 403, 404) in a fraction of the time.
    fn coverage(self) -> bool {
        matches!(self, Caller::Admin)
    }
}

both!(schemathesis_finds_no_error, |dialect: Dialect| async move {
    fuzz(dialect, Caller::Admin).await;
});

both!(
    schemathesis_finds_no_error_as_a_user,
    |dialect: Dialect| async move {
        fuzz(dialect, Caller::User).await;
    }
);

both!(
    schemathesis_finds_no_error_anonymously,
    |dialect: Dialect| async move {
        fuzz(dialect, Caller::Anonymous).await;
    }
);

async fn fuzz(dialect: Dialect, caller: Caller) {
    let api = TestApi::new(
        dialect,
        &[("avatar", AVATAR), ("comment", COMMENT), ("review", REVIEW)],
    )
    .await;
    let seeded = seed(&api).await;
    let server = Served::start(&api).await;
    let found = schemathesis(
        &server.url,
        &config(&seeded, caller),
        caller.token(),
        &[],
        &format!("{dialect:?} as {caller:?}"),
    )
    .await;
    server.stop().await;
    api.cleanup().await;
    if let Some(problems) = found {
        panic!("schemathesis as {caller:?} found problems:\n{problems}");
    }
}

/// The app of `api` on a real socket, until [`Served::stop`].
struct Served {
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(api: &TestApi) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/openapi.json", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kumo_server::serve(listener, api.state.clone(), async {
            let _ = stopped.await;
        }));
        Served { url, stop, server }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// Runs schemathesis on the document at `url` with `config` (a
/// schemathesis.toml), as the bearer of `token` if any, with `args` added;
/// `None` when it found nothing, else its report.
async fn schemathesis(
    url: &str,
    config: &str,
    token: Option<&str>,
    args: &[&str],
    label: &str,
) -> Option<String> {
    // The configuration, and Hypothesis' files, stay in a directory of
    // their own.
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    std::fs::write(dir.path().join("kumo_hooks.py"), HOOKS).unwrap();
    let started = Instant::now();
    let mut command = tokio::process::Command::new(python_tool("schemathesis"));
    command
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", url, "--checks", CHECKS, "--no-color"])
        .args(args);
    if let Some(token) = token {
        command.args(["--header", &format!("Authorization: Bearer {token}")]);
    }
    let out = command
        .args(
            std::env::var("KUMO_FUZZ_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .output()
        .await
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis on {label} took {:.0?}:\n{stdout}{stderr}",
        started.elapsed()
    );
    (!out.status.success()).then(|| format!("{stdout}{stderr}"))
}

// ---- the auth routes ---------------------------------------------------------

const AUTH_SECRET: &[u8] = b"the auth fuzz test's secret, 32 b";

/// schemathesis.toml for the `/auth` routes: the same seed and example
/// count, the coverage phase only where `coverage` says, and the stateful
/// one only for a run of several operations (it follows links between
/// them). schemathesis would otherwise see the register and sign-in
/// operations and sign itself up: each run acts only as the caller the
/// test chose.
fn auth_config(coverage: bool, stateful: bool) -> String {
    format!(
        "seed = {SEED}\nhooks = \"kumo_hooks.py\"\n\n[auth]\nauto-signup = false\n\n\
         [generation]\nmax-examples = {MAX_EXAMPLES}\ndatabase = \"none\"\n\n\
         [phases.coverage]\nenabled = {coverage}\n\n[phases.stateful]\nenabled = {stateful}\n"
    )
}

/// A password sign-in of the fuzzer's account: its access token.
async fn fuzzer_session(api: &TestApi) -> String {
    let r = api
        .send(
            "POST",
            "/auth/password/sign_in",
            None,
            Some(json!({"username": "fuzzer", "password": FUZZER_PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.data()["access_token"].as_str().unwrap().to_owned()
}

const FUZZER_PASSWORD: &str = "correct horse battery staple";

/// The `/auth/…` routes fuzzed from the document of a server with every
/// strategy on (rate limits off, a manual clock, the dev mailbox): as a
/// signed-in user (an access token), with the coverage phase, and
/// anonymously against a server that confirms email addresses, so both
/// variants of registering and changing an address are answered.
///
/// Signing out ends the session the fuzzer's token belongs to, after
/// which every request of its run would be a (documented) 401; so each
/// sign-out operation runs on a session of its own, after the others.
async fn fuzz_auth(dialect: Dialect) {
    let mut api = TestApi::avatars(dialect).await;
    let every = kumo_server::auth::Strategies {
        magic_link: true,
        password: true,
        api_key: true,
    };
    api.sign_ins(
        crate::openapi_auth::settings(every, false),
        AUTH_SECRET,
        crate::openapi_auth::clock(),
    );
    let r = api
        .send(
            "POST",
            "/auth/password/register",
            None,
            Some(json!({
                "email": "fuzzer@example.com", "username": "fuzzer", "password": FUZZER_PASSWORD
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (main, one, all) = (
        fuzzer_session(&api).await,
        fuzzer_session(&api).await,
        fuzzer_session(&api).await,
    );
    let server = Served::start(&api).await;
    let mut problems = Vec::new();
    let auth_only = ["--include-path-regex", "^/auth/"];
    // (schemathesis joins its include filters with "or", so each sign-out
    // run names its one operation alone.)
    let runs: [(&str, &[&str], bool); 3] = [
        (
            &main,
            &[
                "--include-path-regex",
                "^/auth/",
                "--exclude-operation-id-regex",
                "^auth\\.sign_out",
            ],
            true,
        ),
        (&one, &["--include-operation-id", "auth.sign_out"], false),
        (
            &all,
            &["--include-operation-id", "auth.sign_out_everywhere"],
            false,
        ),
    ];
    for (token, args, coverage) in runs {
        let label = format!("{dialect:?}, /auth signed in, {}", args.join(" "));
        problems.extend(
            schemathesis(
                &server.url,
                &auth_config(coverage, coverage),
                Some(token),
                args,
                &label,
            )
            .await,
        );
    }
    server.stop().await;

    api.sign_ins(
        crate::openapi_auth::settings(every, true),
        AUTH_SECRET,
        crate::openapi_auth::clock(),
    );
    let server = Served::start(&api).await;
    let label = format!("{dialect:?}, /auth anonymously, confirm_email");
    problems.extend(
        schemathesis(
            &server.url,
            &auth_config(false, true),
            None,
            &auth_only,
            &label,
        )
        .await,
    );
    server.stop().await;
    api.cleanup().await;
    assert!(
        problems.is_empty(),
        "schemathesis found problems in the /auth routes:\n{}",
        problems.join("\n")
    );
}

both!(
    schemathesis_finds_no_error_in_the_auth_routes,
    |dialect: Dialect| async move {
        fuzz_auth(dialect).await;
    }
);
