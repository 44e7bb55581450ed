//! A test API: resource files → schema → migrated database → router, plus
//! actors for a few users, and helpers to send requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use kumo_core::actor::Actor;
use kumo_core::load::load_schema;
use kumo_db::db::{Database, Target};
use kumo_db::files::Plan;
use kumo_db::runner;
use kumo_db::sql::Dialect;
use kumo_mail::Outbox;
use kumo_mail::templates::Templates;
use kumo_server::api::{AuthFailure, Authenticate};
use kumo_server::auth::clock::Clock;
use kumo_server::auth::{Auth, Settings};
use kumo_server::{AppState, app};
use serde_json::{Map, Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub(crate) const AVATAR: &str = r#"
[resource]
name = "avatar"

[attributes]
name        = { type = "string", required = true, min_length = 1, max_length = 64 }
is_public   = { type = "boolean", default = false }
polycount   = { type = "integer", min = 0 }
rating      = { type = "float" }
kind        = { type = "enum", values = ["humanoid", "creature"], default = "humanoid" }
tags        = { type = "array", of = "string" }
metadata    = { type = "json" }
released_at = { type = "datetime" }
secret_note = { type = "string", sensitive = true }

[relationships]
uploader = { belongs_to = "user", required = true, on_delete = "cascade" }
comments = { has_many = "comment" }

[identities]
unique_name_per_uploader = ["uploader", "name"]

[policies]
read    = "record.is_public || actor.id == record.uploader_id"
create  = "actor.id == record.uploader_id"
update  = "actor.id == record.uploader_id"
destroy = "actor.id == record.uploader_id || actor.role == 'admin'"

[actions.publish]
type = "update"
accept = []
set = { is_public = true }
policy = "actor.id == record.uploader_id"

[actions.bump]
type = "update"
increment = { polycount = 1 }
policy = "actor != null"

[actions.rate]
type = "update"
accept = ["rating"]
policy = "actor != null && record.is_public"
"#;

pub(crate) const COMMENT: &str = r#"
[resource]
name = "comment"

[attributes]
body = { type = "text", required = true }

[relationships]
avatar = { belongs_to = "avatar", required = true, on_delete = "cascade" }
author = { belongs_to = "user", required = true, on_delete = "restrict" }

[policies]
read   = "record.avatar.is_public || actor.id == record.author_id"
create = "actor.id == record.author_id"
"#;

pub(crate) struct TestApi {
    pub(crate) state: AppState,
    pub(crate) db: Database,
    target: Option<Target>,
    _dir: Option<TempDir>,
    /// Token → user record, filled by [`TestApi::user`].
    users: Arc<std::sync::Mutex<HashMap<String, Map<String, Value>>>>,
    /// What the state was built from, to build it again with the real
    /// auth layer ([`TestApi::sign_ins`]).
    schema: kumo_core::resource::Schema,
    migration: kumo_db::files::Migration,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    /// A response read whole; its body must be JSON.
    pub(crate) async fn from_response(response: axum::response::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{status}: the body is not JSON: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Reply {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn data(&self) -> &Value {
        &self.body["data"]
    }

    pub(crate) fn id(&self) -> String {
        self.body["data"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

pub(crate) const ADMIN: &str = "admin";

impl TestApi {
    pub(crate) async fn new(dialect: Dialect, files: &[(&str, &str)]) -> TestApi {
        TestApi::with_pool(dialect, files, kumo_db::db::default_pool_size()).await
    }

    /// A test API whose database pool holds at most `pool_size` connections.
    pub(crate) async fn with_pool(
        dialect: Dialect,
        files: &[(&str, &str)],
        pool_size: u32,
    ) -> TestApi {
        let (target, dir) = match dialect {
            Dialect::Postgres => {
                let base = std::env::var("KUMO_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
                let Target::Postgres(options) = Target::parse(&base).expect("postgres URL") else {
                    panic!("KUMO_TEST_POSTGRES_URL must be a postgres:// URL");
                };
                let name = format!("kumo_test_{}", uuid::Uuid::new_v4().simple());
                (Target::Postgres(options.database(&name)), None)
            }
            Dialect::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("api.db").display());
                (Target::parse(&url).expect("sqlite URL"), Some(dir))
            }
        };
        target.create().await.expect("create the test database");
        let db = target.connect_pool(pool_size).await.expect("connect");
        let sources = files
            .iter()
            .map(|(name, text)| (format!("resources/{name}.toml").into(), (*text).to_owned()))
            .collect();
        let schema = load_schema(sources, true).unwrap_or_else(|d| panic!("{d}"));
        let migration = Plan::new(Vec::new(), &schema).migration("20260101000000_initial".into());
        runner::migrate(&db, std::slice::from_ref(&migration))
            .await
            .expect("migrate");
        let users: Arc<std::sync::Mutex<HashMap<String, Map<String, Value>>>> = Arc::default();
        let known = users.clone();
        let authenticate: Authenticate = Arc::new(move |parts: &axum::http::request::Parts| {
            let headers = &parts.headers;
            let answer = (|| {
                let Some(value) = headers.get(header::AUTHORIZATION) else {
                    return Ok(Actor::anonymous());
                };
                let token = value
                    .to_str()
                    .unwrap_or_default()
                    .trim_start_matches("Bearer ");
                if token == ADMIN {
                    let mut admin = Map::new();
                    admin.insert("id".into(), json!("00000000-0000-7000-8000-0000000000ad"));
                    admin.insert("role".into(), json!("admin"));
                    return Ok(Actor::user(admin));
                }
                // `key:<user>` is an API key of that user's.
                let (owner, key) = match token.strip_prefix("key:") {
                    Some(owner) => (owner, true),
                    None => (token, false),
                };
                let record = known
                    .lock()
                    .expect("users")
                    .get(owner)
                    .cloned()
                    .ok_or_else(|| AuthFailure::Unauthenticated("unknown test token".into()))?;
                Ok(if key {
                    Actor::api_key(uuid::Uuid::from_u128(1), record)
                } else {
                    Actor::user(record)
                })
            })();
            Box::pin(std::future::ready(answer))
        });
        let state = AppState::with_api(
            db.clone(),
            vec![migration.clone()],
            schema.clone(),
            b"test secret",
        )
        .with_authenticate(authenticate);
        TestApi {
            state,
            db,
            target: Some(target),
            _dir: dir,
            users,
            schema,
            migration,
        }
    }

    /// Serves what `kumo serve` does when no strategy is enabled: the
    /// resource API with no authenticator but the anonymous one.
    pub(crate) fn without_sign_in(&mut self) {
        self.state = AppState::with_api(
            self.db.clone(),
            vec![self.migration.clone()],
            self.schema.clone(),
            b"test secret",
        );
    }

    /// Serves the resource API with `authenticate` as its hook.
    pub(crate) fn authenticating_with(&mut self, authenticate: Authenticate) {
        self.without_sign_in();
        let state = std::mem::replace(&mut self.state, AppState::new(self.db.clone(), Vec::new()));
        self.state = state.with_authenticate(authenticate);
    }

    /// Serves the auth layer that `settings` describe, with the dev mail
    /// adapter and a manual clock, in place of the test authenticator.
    pub(crate) fn sign_ins(
        &mut self,
        settings: Settings,
        secret: &[u8],
        clock: Clock,
    ) -> Arc<Auth> {
        let state = AppState::with_api(
            self.db.clone(),
            vec![self.migration.clone()],
            self.schema.clone(),
            secret,
        );
        let outbox = Outbox::start(kumo_mail::Settings {
            from: kumo_mail::DEFAULT_FROM.parse().expect("the default sender"),
            delivery: kumo_mail::Delivery::Dev,
        });
        let auth = Auth::start(
            state.shared_engine().expect("an engine"),
            settings,
            secret,
            outbox,
            Templates::load(None).expect("the built-in templates"),
            clock,
        )
        .expect("the auth layer starts");
        self.state = state.with_auth(auth.clone());
        auth
    }

    /// The default test project: avatars and comments, with accounts.
    pub(crate) async fn avatars(dialect: Dialect) -> TestApi {
        TestApi::new(dialect, &[("avatar", AVATAR), ("comment", COMMENT)]).await
    }

    /// Creates a user (as admin) and returns the token that acts as them;
    /// `key:<token>` acts as an API key of theirs.
    pub(crate) async fn user(&self, name: &str, role: &str) -> String {
        let r = self
            .send(
                "POST",
                "/api/users",
                Some(ADMIN),
                Some(json!({ "email": format!("{name}@example.com"), "username": name, "role": role })),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "creating user {name}: {}",
            r.body
        );
        let record = r.data().as_object().cloned().expect("user record");
        self.users
            .lock()
            .expect("users")
            .insert(name.to_owned(), record);
        name.to_owned()
    }

    pub(crate) fn user_id(&self, token: &str) -> String {
        self.users.lock().expect("users")[token]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.raw(request.body(body).expect("request")).await
    }

    pub(crate) async fn raw(&self, request: Request<Body>) -> Reply {
        let response = app(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        Reply::from_response(response).await
    }

    pub(crate) async fn cleanup(mut self) {
        self.db.close().await;
        drop(self.state);
        if let Some(target) = self.target.take() {
            target
                .drop_database()
                .await
                .expect("drop the test database");
        }
    }
}

/// Runs `test` on PostgreSQL and on SQLite.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn postgres() {
                ($body)(kumo_db::sql::Dialect::Postgres).await;
            }

            #[tokio::test]
            async fn sqlite() {
                ($body)(kumo_db::sql::Dialect::Sqlite).await;
            }
        }
    };
}

impl TestApi {
    /// Sends a request from a task of its own and answers its status: a
    /// client the test can make go away before the answer, by aborting the
    /// task (which drops the request's future, as axum does when the
    /// connection closes).
    pub(crate) fn spawn_send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> tokio::task::JoinHandle<StatusCode> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let request = request.body(body).expect("request");
        let router = app(self.state.clone());
        tokio::spawn(async move { router.oneshot(request).await.expect("infallible").status() })
    }
}
