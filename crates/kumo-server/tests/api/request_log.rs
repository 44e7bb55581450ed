//! What a request leaves in the logs: its method, the route it matched
//! (the path template), its status and latency, never its query string
//! (filter values: emails, names), its path's ids or its headers
//! (credentials); and the warnings and errors it logs carry its method and
//! route at the server's default level.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use kumo_db::db::Database;
use kumo_db::sql::Dialect;
use tracing_subscriber::fmt::MakeWriter;

use crate::both;
use crate::harness::{AVATAR, COMMENT, TestApi};

/// Log lines, written by the test's subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

both!(
    request_logs_held_the_query_string_with_its_filter_values,
    |dialect: Dialect| async move {
        // `TraceLayer::new_for_http()` put each request's whole URI in its
        // span, so `filter[email]=…` reached the debug logs. The span now
        // holds the method and the matched route.
        let api = TestApi::avatars(dialect).await;
        let alice = api.user("alice", "user").await;
        let alice_id = api.user_id(&alice);
        let log = Buffer::default();
        // Every level of every target, on this thread only (a current-
        // thread runtime runs the request here), so other tests' requests
        // don't show and no global subscriber is taken.
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(log.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        let listed = api
            .send(
                "GET",
                "/api/avatars?filter[name]=carol.secret%40example.com&sort=name",
                Some(&alice),
                None,
            )
            .await;
        let shown = api
            .send(
                "GET",
                &format!("/api/users/{alice_id}?fields=username"),
                Some(&alice),
                None,
            )
            .await;
        let unknown = api
            .send("GET", "/nowhere?email=dave.secret@example.com", None, None)
            .await;
        drop(guard);
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

        let text = log.text();
        for secret in [
            "carol.secret",
            "dave.secret",
            "example.com",
            "filter[",
            "fields=",
            "sort=",
            "?email",
            &alice_id,
            "Bearer",
        ] {
            assert!(!text.contains(secret), "`{secret}` is in the log:\n{text}");
        }
        // What the log does say: method, route, status and latency.
        for said in [
            "request{method=GET route=/api/{plural}}",
            "request{method=GET route=/api/{plural}/{id}}",
            "request{method=GET route=<no route>}",
            "status=200",
            "status=404",
            "latency=",
        ] {
            assert!(text.contains(said), "`{said}` is not in the log:\n{text}");
        }
        api.cleanup().await;
    }
);

both!(
    a_warning_logged_by_a_request_did_not_say_its_route,
    |dialect: Dialect| async move {
        // The request span is at DEBUG, so at the server's default level
        // (`warn`) it does not exist, and the warning of a 503 (or the
        // error of a 500) said nothing of the request: no method, no route.
        // The server's log format now adds them.
        let api = TestApi::with_pool(dialect, &[("avatar", AVATAR), ("comment", COMMENT)], 1).await;
        let alice = api.user("alice", "user").await;
        let log = Buffer::default();
        // WARN and above, as `kumo serve` logs by default; on this thread
        // only (see above).
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .event_format(kumo_server::log::log_format())
            .with_writer(log.clone())
            .finish();
        // The only connection (and on PostgreSQL the only read connection)
        // is held, so the request finds the database busy: 503, logged.
        let busy = match &api.db {
            Database::Postgres(pool) => {
                let _reading = api
                    .state
                    .engine()
                    .unwrap()
                    .hold_a_read_connection()
                    .await
                    .expect("the only read connection");
                let _held = pool.begin().await.expect("the only connection");
                let _guard = tracing::subscriber::set_default(subscriber);
                api.send(
                    "GET",
                    "/api/avatars?filter[name]=erin.secret%40example.com",
                    Some(&alice),
                    None,
                )
                .await
            }
            Database::Sqlite(pool) => {
                let _held = pool.begin().await.expect("the only connection");
                let _guard = tracing::subscriber::set_default(subscriber);
                api.send(
                    "GET",
                    "/api/avatars?filter[name]=erin.secret%40example.com",
                    Some(&alice),
                    None,
                )
                .await
            }
        };
        assert_eq!(
            busy.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            busy.body
        );
        let text = log.text();
        let warning = text
            .lines()
            .find(|l| l.contains("database busy in an API request"))
            .unwrap_or_else(|| panic!("no warning was logged:\n{text}"));
        assert!(warning.contains(" WARN "), "{warning}");
        assert!(
            warning.ends_with(" method=GET route=/api/{plural}"),
            "the warning does not say its request: {warning}"
        );
        for secret in ["erin.secret", "example.com", "filter[", "Bearer"] {
            assert!(!text.contains(secret), "`{secret}` is in the log:\n{text}");
        }
        api.cleanup().await;
    }
);
