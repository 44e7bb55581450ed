//! What a request's warnings and errors say of it: its method and the
//! route it matched (the path template), never its URI.
//!
//! The request's span (`request_log` in `lib.rs`) is at DEBUG, so at the
//! server's default filter (`warn`) it does not exist, and an ERROR-level
//! span cost about a tenth of a get-by-id's CPU (a span per request, its
//! fields formatted, and the filter's lock taken at every poll). Instead
//! each request runs with a task-local [`Label`] (a clone of its method
//! and of the matched route's `Arc`), and [`log_format`], the server's log
//! line format, appends it to the WARN and ERROR events logged while the
//! request is handled: nothing is formatted until such an event is.

use std::fmt;
use std::future::Future;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The request a task is handling, as its log lines name it.
#[derive(Clone)]
struct Label {
    method: Method,
    /// `None` for an unknown route (the 404 fallback).
    route: Option<MatchedPath>,
}

tokio::task_local! {
    static REQUEST: Label;
}

/// Middleware: handles the request with its [`Label`] set. Layered where
/// the route is already matched (`Router::layer`), as the request span is.
pub(crate) async fn label(request: Request, next: Next) -> Response {
    let label = Label {
        method: request.method().clone(),
        route: request.extensions().get::<MatchedPath>().cloned(),
    };
    REQUEST.scope(label, next.run(request)).await
}

/// `future`, for a task the request spawns (a write), with the request's
/// label, so what it logs names the request too.
pub(crate) fn labelled<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let label = REQUEST.try_with(Label::clone).ok();
    async move {
        match label {
            Some(label) => REQUEST.scope(label, future).await,
            None => future.await,
        }
    }
}

/// The server's log lines: `tracing_subscriber`'s default format, with
/// ` method=… route=…` at the end of each WARN or ERROR event logged while
/// a request is handled.
pub fn log_format() -> RequestFormat {
    RequestFormat(Format::default())
}

/// See [`log_format`].
pub struct RequestFormat(Format);

impl<S, N> FormatEvent<S, N> for RequestFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // More severe levels compare lower: WARN and ERROR.
        let label = if *event.metadata().level() <= Level::WARN {
            REQUEST.try_with(Label::clone).ok()
        } else {
            None
        };
        let Some(label) = label else {
            return self.0.format_event(ctx, writer, event);
        };
        // The line is formatted whole first, to add the label before its
        // newline (without colours: these lines are rare).
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let route = label
            .route
            .as_ref()
            .map_or("<no route>", MatchedPath::as_str);
        writeln!(
            writer,
            "{} method={} route={route}",
            line.trim_end_matches('\n'),
            label.method
        )
    }
}
