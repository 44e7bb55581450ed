//! The `/auth/…` routes in the OpenAPI document: what `auth/routes.rs` and
//! `auth/account_routes.rs` serve for the strategies `kumo.toml` enables,
//! and nothing else (a strategy that is not enabled answers 404 on its
//! routes, so they are left out; with no strategy there is no `/auth`).
//!
//! Each operation's body schema says what its handler checks before any
//! work (required, non-blank strings; an email's length; a new password's
//! 8 to 128 characters; a key name's 64), and its responses are every
//! status the handler can give. What no JSON Schema can say (a password
//! zxcvbn finds easy to guess, an address that cannot be mailed, a wrong
//! current password, a link this server never made) is in the
//! descriptions. `tests/api/openapi.rs` checks the routes against the
//! served ones for every combination of strategies, and `tests/api/fuzz.rs`
//! fuzzes them.
//!
//! `/dev/mailbox` and `/dev/mailbox.json` are left out on purpose: they
//! exist only with the `dev` mail adapter and answer only clients on the
//! server's own machine (404 to anyone else, and behind a proxy), so they
//! are a development aid for a person at that machine, not part of the API
//! a game or a generated client talks to.

use kumo_core::project::Registration;
use serde_json::{Map, Value, json};

use super::{
    Builder, ErrorResponse, INTERNAL, JSON, RATE_LIMITED, UNAUTHENTICATED, UNAVAILABLE,
    error_schema, json_response, schema_ref, with_errors,
};
use crate::auth::Settings;
use crate::auth::credentials::{COOKIE_PLAIN, COOKIE_SECURE};

/// Added to the document's introduction on a server that signs callers in.
pub(super) const INTRODUCTION: &str = "

**Signing in.** The `auth` operations sign callers in (only those of the \
strategies this server enables are listed; the others answer 404). Every \
sign-in answers a session, `{\"data\": {\"access_token\", \"refresh_token\", \
\"token_type\", \"expires_in\", \"session_id\", \"user\"}}`. Send the access \
token, or an API key (`kumo_…`), as `Authorization: Bearer …`; a browser signed \
in by a magic link sends its session cookie instead. Every auth route counts \
against the client's allowance, and those aimed at one account against that \
account's too (429 with `Retry-After`).";

/// Which strategy must be enabled for a route to be served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Any: the route is served whenever the auth layer is on.
    Any,
    MagicLink,
    Password,
    ApiKey,
}

impl Needs {
    fn met(self, settings: &Settings) -> bool {
        let s = settings.strategies;
        match self {
            Needs::Any => s.any(),
            Needs::MagicLink => s.magic_link,
            Needs::Password => s.password,
            Needs::ApiKey => s.api_key,
        }
    }
}

// Refusals of the auth routes, by status and the codes each can carry.
// They are components of their own: the resource API's share a status but
// not their codes or descriptions.

const NOT_AN_OBJECT: ErrorResponse = ErrorResponse {
    name: "auth.not_an_object",
    status: "400",
    codes: &["bad_request", "malformed_json"],
    description: "The body is not valid JSON (`malformed_json`, with its line and column), \
                  an object repeats a key, or it is not a JSON object (`bad_request`). Fields \
                  the operation does not name are ignored.",
};
const NO_SESSION: ErrorResponse = ErrorResponse {
    name: "auth.no_session",
    status: "400",
    codes: &["bad_request"],
    description: "Signed in with an API key, which has no session to end: revoke the key \
                  instead (`DELETE /auth/api_keys/{id}`).",
};
const INVALID_FIELDS: ErrorResponse = ErrorResponse {
    name: "auth.invalid",
    status: "422",
    codes: &["invalid"],
    description: "A field is missing, blank or not a string, or breaks a rule its schema or \
                  the operation's description states; `fields` names each.",
};
const LINK_REFUSED: ErrorResponse = ErrorResponse {
    name: "auth.link_refused",
    status: "401",
    codes: &["token_invalid", "token_expired", "token_used"],
    description: "The link, code, token or poll handle is not one this server made \
                  (`token_invalid`, also for a well-formed one it does not know), has expired \
                  (`token_expired`), or was already used (`token_used`).",
};
const REFRESH_REFUSED: ErrorResponse = ErrorResponse {
    name: "auth.refresh_refused",
    status: "401",
    codes: &[
        "token_invalid",
        "token_expired",
        "session_revoked",
        "token_reused",
    ],
    description: "The refresh token is not one this server made (`token_invalid`), its \
                  session has expired (`token_expired`) or was signed out \
                  (`session_revoked`), or it was already rotated (`token_reused`): someone \
                  else holds a copy, so its session is now signed out.",
};
const CREDENTIALS_REFUSED: ErrorResponse = ErrorResponse {
    name: "auth.credentials_refused",
    status: "401",
    codes: &["invalid_credentials"],
    description: "The email, username or password is not correct, or the account has no \
                  password (made by a magic link: set one with a reset link). All look the \
                  same and take the same time.",
};
const CALLER_OR_ACCOUNT_REFUSED: ErrorResponse = ErrorResponse {
    name: "auth.caller_refused",
    status: "401",
    codes: &["unauthenticated", "invalid_credentials"],
    description: "The `Authorization` header or cookie does not check out, or there is none \
                  (`unauthenticated`, with `WWW-Authenticate: Bearer`), or the signed-in \
                  account no longer exists (`invalid_credentials`).",
};
const LOCKED: ErrorResponse = ErrorResponse {
    name: "auth.account_locked",
    status: "403",
    codes: &["account_locked"],
    description: "The account is locked (`kumo user lock`).",
};
const LOCKED_OR_UNCONFIRMED: ErrorResponse = ErrorResponse {
    name: "auth.account_locked_or_unconfirmed",
    status: "403",
    codes: &["account_locked", "email_not_confirmed"],
    description: "The password is right, but the account is locked (`account_locked`) or its \
                  address is not confirmed yet (`email_not_confirmed`: a fresh confirmation \
                  link was mailed to it).",
};
const REGISTRATION_CLOSED: ErrorResponse = ErrorResponse {
    name: "auth.registration_closed",
    status: "403",
    codes: &["registration_closed"],
    description: "This server does not take new accounts (`[auth] registration = \"closed\"`).",
};
const SESSION_ONLY: ErrorResponse = ErrorResponse {
    name: "auth.session_only",
    status: "403",
    codes: &["forbidden", "cross_site_request"],
    description: "Signed in with an API key, which may not do this: only a session (an \
                  access token or the browser's cookie) may, so a leaked key cannot take the \
                  account over (`forbidden`); or signed in by the cookie from another site \
                  (`cross_site_request`).",
};
const SESSION_ONLY_RECENT: ErrorResponse = ErrorResponse {
    name: "auth.session_only_recent",
    status: "403",
    codes: &[
        "forbidden",
        "cross_site_request",
        "reauthentication_required",
    ],
    description: "As `auth.session_only`; or the account has no password and its session was \
                  not opened by a sign-in within the last 10 minutes \
                  (`reauthentication_required`: sign in again, then retry).",
};
const CROSS_SITE: ErrorResponse = ErrorResponse {
    name: "auth.cross_site_request",
    status: "403",
    codes: &["cross_site_request"],
    description: "Signed in by the browser's cookie, from a page that is not this server's \
                  own (`Sec-Fetch-Site` is not `same-origin` and `Origin` is not the public \
                  URL's): refused against cross-site request forgery.",
};
const NOT_THE_CALLERS: ErrorResponse = ErrorResponse {
    name: "auth.not_found",
    status: "404",
    codes: &["not_found"],
    description: "No such session or key among the caller's own (another user's looks the \
                  same as a missing one), or, for `/auth/me`, the account is gone.",
};
const TAKEN: ErrorResponse = ErrorResponse {
    name: "auth.taken",
    status: "409",
    codes: &["conflict"],
    description: "The email address or username belongs to another account; `fields` names \
                  it.",
};
const HASHING_BUSY: ErrorResponse = ErrorResponse {
    name: "auth.busy",
    status: "503",
    codes: &["busy", "unavailable"],
    description: "Too many password checks are waiting for a core (`busy`), or the database \
                  is too busy to answer now (`unavailable`). Nothing was changed; retry after \
                  `Retry-After` seconds.",
};

const AUTH_ERRORS: [&ErrorResponse; 16] = [
    &NOT_AN_OBJECT,
    &NO_SESSION,
    &INVALID_FIELDS,
    &LINK_REFUSED,
    &REFRESH_REFUSED,
    &CREDENTIALS_REFUSED,
    &CALLER_OR_ACCOUNT_REFUSED,
    &LOCKED,
    &LOCKED_OR_UNCONFIRMED,
    &REGISTRATION_CLOSED,
    &SESSION_ONLY,
    &SESSION_ONLY_RECENT,
    &CROSS_SITE,
    &NOT_THE_CALLERS,
    &TAKEN,
    &HASHING_BUSY,
];

/// The largest body an auth route reads: axum's default limit for a
/// `Bytes` body, which these handlers take (the resource API reads its own,
/// smaller, [`crate::api::BODY_LIMIT`]). `tests/api/openapi_auth.rs` pins it.
pub const AUTH_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// The HTML pages' answers other than 200, shared by the link pages: the
/// same page says why, in words, at each status.
const PAGE_STATUSES: [(&str, &str); 7] = [
    (
        "401",
        "The link is not valid, has expired, or was already used (a page saying so).",
    ),
    (
        "403",
        "The form was not sent from its own page (`Sec-Fetch-Site` or `Origin` from another \
         site: refused against cross-site request forgery), or the account is locked (a page \
         saying which).",
    ),
    (
        "409",
        "Another account uses the address now (a page saying so).",
    ),
    (
        "422",
        "The new password was refused: the form again, saying why (8 to 128 characters, not \
         easy to guess). The link still works.",
    ),
    (
        "429",
        "Too many requests from this network: a page saying so, or the rate limit's JSON \
         error. `Retry-After` says how long to wait when it is sent (the password-reset and \
         email-confirmation pages do not send it).",
    ),
    (
        "500",
        "The server failed (a page saying so). Nothing was changed.",
    ),
    (
        "503",
        "The server is too busy now (a page saying so, without `Retry-After`). Nothing was \
         changed; try again in a moment.",
    ),
];

/// How a signed-in caller may present themselves, by what the route takes.
#[derive(Clone, Copy)]
enum Who {
    /// Nobody: the route reads no credential, whatever is sent.
    Anyone,
    /// A session (access token or cookie) or an API key.
    SignedIn,
    /// A session only: an API key is refused with 403.
    SessionOnly,
}

impl Who {
    fn security(self) -> Value {
        match self {
            Who::Anyone => json!([{}]),
            Who::SignedIn => json!([{ "bearer": [] }, { "api_key": [] }, { "cookie": [] }]),
            Who::SessionOnly => json!([{ "bearer": [] }, { "cookie": [] }]),
        }
    }
}

/// One operation of the auth routes, before it is written out.
struct Op {
    method: &'static str,
    path: &'static str,
    needs: Needs,
    id: &'static str,
    summary: &'static str,
    description: String,
    who: Who,
    /// A JSON body's schema (required when given).
    body: Option<Value>,
    /// Answers other than the shared error responses.
    answers: Value,
    errors: Vec<&'static ErrorResponse>,
    /// HTML page statuses (from [`PAGE_STATUSES`]) the operation answers.
    pages: &'static [&'static str],
}

impl Builder {
    /// The `/auth/…` routes served with `settings`, their schemas and
    /// responses, and the security schemes a signed-in caller uses.
    pub(super) fn auth_routes(&mut self, settings: &Settings) {
        if !settings.strategies.any() {
            return;
        }
        self.tags.push(json!({
            "name": "auth",
            "description": "Accounts and sign-in: magic links, passwords, sessions, API keys."
        }));
        self.auth_schemas();
        for e in AUTH_ERRORS {
            self.responses
                .insert(e.name.to_owned(), auth_error_response(e));
        }
        for (status, description) in PAGE_STATUSES {
            let mut content = json!({ "text/html": { "schema": { "type": "string" } } });
            if status == "429" {
                content[JSON] = json!({ "schema": error_schema(Some(&["rate_limited"])) });
            }
            let mut response = json!({ "description": description, "content": content });
            if status == "429" {
                response["headers"] = json!({ "Retry-After": {
                    "description": "Seconds to wait before the next request, when sent.",
                    "required": false,
                    "schema": { "type": "integer", "minimum": 1 }
                }});
            }
            self.responses.insert(page_response(status), response);
        }
        self.responses.insert(
            "auth.payload_too_large".into(),
            json!({
                "description": format!(
                    "The body is larger than {AUTH_BODY_LIMIT} bytes. Refused by the HTTP \
                     framework before the route runs, with a plain-text message: not the \
                     error shape."
                ),
                "content": { "text/plain": { "schema": { "type": "string" } } }
            }),
        );
        for op in operations(settings) {
            if !op.needs.met(settings) {
                continue;
            }
            let mut responses = with_errors(op.answers, &op.errors);
            if op.id == "auth.password.reset_form" {
                // A form page's body, read by the HTTP framework.
                responses["413"] =
                    json!({ "$ref": "#/components/responses/auth.payload_too_large" });
            } else if op.body.is_some() {
                // JSON bodies are read as the resource API reads them.
                responses["413"] = json!({ "$ref": "#/components/responses/payload_too_large" });
                responses["415"] =
                    json!({ "$ref": "#/components/responses/unsupported_media_type" });
            }
            for status in op.pages {
                responses[*status] =
                    json!({ "$ref": format!("#/components/responses/{}", page_response(status)) });
            }
            let mut operation = json!({
                "tags": ["auth"],
                "operationId": op.id,
                "summary": op.summary,
                "description": op.description,
                "security": op.who.security(),
                "responses": responses,
            });
            // Links let a client (and the fuzzer's stateful phase) follow
            // an answer to the operation it enables.
            if let Some((status, link, target, how)) = match op.id {
                "auth.magic_link.request" => Some((
                    "200",
                    "poll",
                    "auth.magic_link.poll",
                    json!({ "requestBody": "$response.body#/poll" }),
                )),
                "auth.api_keys.create" => Some((
                    "201",
                    "revoke",
                    "auth.api_keys.revoke",
                    json!({ "parameters": { "id": "$response.body#/data/id" } }),
                )),
                _ => None,
            } {
                let mut spec = how;
                spec["operationId"] = json!(target);
                operation["responses"][status]["links"] = json!({ link: spec });
            }
            if let Some(body) = op.body {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": { JSON: { "schema": body } }
                });
            }
            if op.path.contains("{token}") {
                operation["parameters"] = json!([{
                    "name": "token",
                    "in": "path",
                    "required": true,
                    "description": "The token from the emailed link.",
                    "schema": { "type": "string" }
                }]);
            }
            if op.path.ends_with("{id}") {
                operation["parameters"] = json!([{
                    "name": "id",
                    "in": "path",
                    "required": true,
                    "description": "Its id. Any other text answers 404.",
                    "schema": { "type": "string", "format": "uuid" }
                }]);
            }
            if op.id == "auth.password.reset_form" {
                operation["requestBody"] = json!({
                    "required": false,
                    "description": "The form's one field; a missing one is an empty password, \
                                    refused with 422.",
                    "content": { "application/x-www-form-urlencoded": { "schema": {
                        "type": "object",
                        "properties": { "password": { "type": "string" } }
                    }}}
                });
            }
            let item = self
                .paths
                .entry(op.path.to_owned())
                .or_insert_with(|| json!({}));
            item[op.method] = operation;
        }
    }

    fn auth_schemas(&mut self) {
        let user = if self.schemas.contains_key("user") {
            schema_ref("user")
        } else {
            json!({ "type": "object", "required": ["id"] })
        };
        self.schemas.insert(
            "kumo.auth.session".into(),
            envelope(json!({
                "type": "object",
                "description": "A signed-in session: send `access_token` as `Authorization: \
                                Bearer …`; before it expires, trade `refresh_token` for a new \
                                pair at `POST /auth/token/refresh`.",
                "required": ["access_token", "refresh_token", "token_type", "expires_in",
                             "session_id", "user"],
                "additionalProperties": false,
                "properties": {
                    "access_token": { "type": "string" },
                    "refresh_token": { "type": "string" },
                    "token_type": { "const": "Bearer" },
                    "expires_in": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "Seconds the access token lasts."
                    },
                    "session_id": { "type": "string", "format": "uuid" },
                    "user": user
                }
            })),
        );
        // `{"data": user}` is the resource API's `user.one`.
        if !self.schemas.contains_key("user.one") {
            self.schemas.insert("user.one".into(), envelope(user));
        }
        self.schemas.insert(
            "kumo.auth.ok".into(),
            json!({
                "type": "object",
                "required": ["ok"],
                "additionalProperties": false,
                "properties": { "ok": { "const": true } }
            }),
        );
        self.schemas.insert(
            "kumo.auth.signed_out".into(),
            json!({
                "type": "object",
                "required": ["ok", "signed_out"],
                "additionalProperties": false,
                "properties": {
                    "ok": { "const": true },
                    "signed_out": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "How many sessions were signed out."
                    }
                }
            }),
        );
        self.schemas.insert(
            "kumo.auth.confirmation_sent".into(),
            json!({
                "type": "object",
                "description": "The same answer whether or not the address has an account, \
                                so it says nothing about who plays.",
                "required": ["ok", "confirmation_sent"],
                "additionalProperties": false,
                "properties": {
                    "ok": { "const": true },
                    "confirmation_sent": { "const": true }
                }
            }),
        );
        let stamp = |description: &str| json!({ "type": "string", "format": "date-time", "description": description });
        let maybe_stamp = |description: &str| json!({ "type": ["string", "null"], "format": "date-time", "description": description });
        self.schemas.insert(
            "kumo.auth.device".into(),
            json!({
                "type": "object",
                "description": "A signed-in device (a session).",
                "required": ["id", "created_at", "last_used_at", "expires_at", "ip",
                             "user_agent", "current"],
                "additionalProperties": false,
                "properties": {
                    "id": { "type": "string", "format": "uuid" },
                    "created_at": stamp("When it signed in."),
                    "last_used_at": maybe_stamp("When its refresh token was last used."),
                    "expires_at": stamp("When it is signed out unless it refreshes first."),
                    "ip": { "type": ["string", "null"] },
                    "user_agent": { "type": ["string", "null"] },
                    "current": {
                        "type": "boolean",
                        "description": "Whether it is the session asking."
                    }
                }
            }),
        );
        let key_properties = json!({
            "id": { "type": "string", "format": "uuid" },
            "name": { "type": "string" },
            "prefix": {
                "type": "string",
                "description": "The key's first characters, to tell keys apart."
            },
            "created_at": stamp("When it was made."),
            "expires_at": maybe_stamp("When it stops working; `null`: never."),
            "last_used_at": maybe_stamp("When it was last used."),
            "revoked_at": maybe_stamp("When it was revoked; `null`: it was not.")
        });
        let key_required = [
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ];
        self.schemas.insert(
            "kumo.auth.api_key".into(),
            json!({
                "type": "object",
                "description": "An API key as its owner's list shows it: never the key itself.",
                "required": key_required,
                "additionalProperties": false,
                "properties": key_properties
            }),
        );
        let mut created = key_properties;
        created["key"] = json!({
            "type": "string",
            "pattern": "^kumo_[A-Za-z0-9]+_[A-Za-z0-9]+$",
            "description": "The key, shown this once: only its hash is stored. Send it as \
                            `Authorization: Bearer kumo_…`."
        });
        let mut created_required = key_required.to_vec();
        created_required.push("key");
        self.schemas.insert(
            "kumo.auth.api_key_created".into(),
            json!({
                "type": "object",
                "required": created_required,
                "additionalProperties": false,
                "properties": created
            }),
        );
    }
}

/// `{"data": …}`.
fn envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "additionalProperties": false,
        "properties": { "data": data }
    })
}

fn page_response(status: &str) -> String {
    format!("auth.page_{status}")
}

/// An auth refusal as a response component. The refusals of a refresh and
/// of the caller's credentials come with `WWW-Authenticate: Bearer`; the
/// other 401s (a link, a password) do not, as they refuse no credential.
fn auth_error_response(e: &ErrorResponse) -> Value {
    let mut response = json_response(e.description, error_schema(Some(e.codes)));
    let challenge = match e.name {
        "auth.refresh_refused" => Some(true),
        // `invalid_credentials` comes without one.
        "auth.caller_refused" => Some(false),
        _ => None,
    };
    if let Some(required) = challenge {
        response["headers"] = json!({ "WWW-Authenticate": {
            "description": "`Bearer`.",
            "required": required,
            "schema": { "type": "string" }
        }});
    }
    if e.status == "503" {
        response["headers"] = json!({ "Retry-After": {
            "description": "Seconds to wait before the next request.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        }});
    }
    response
}

/// A string the handler takes: present, a string, and not blank (only
/// whitespace is refused as missing).
fn text(description: &str) -> Value {
    json!({ "type": "string", "minLength": 1, "pattern": "\\S", "description": description })
}

fn email(description: &str) -> Value {
    json!({
        "type": "string",
        "format": "email",
        "minLength": 1,
        "maxLength": kumo_auth::email::MAX_LEN,
        "pattern": "\\S",
        "description": format!(
            "{description} Trimmed and lower-cased; an address that cannot be mailed (no \
             domain name after `@`, spaces, `<>,;\"()[]\\`) is refused with 422."
        )
    })
}

/// A new password, as `kumo_auth::password::refusal` checks it.
fn new_password(description: &str) -> Value {
    json!({
        "type": "string",
        "minLength": kumo_auth::password::MIN_CHARS,
        "maxLength": kumo_auth::password::MAX_CHARS,
        "pattern": "\\S",
        "description": format!(
            "{description} Also refused with 422 when it is easy to guess (zxcvbn scores it \
             below 2 of 4, counting the email address, username and game name as known words)."
        )
    })
}

fn object(required: &[&str], properties: Value) -> Value {
    // Fields the handler does not name are ignored, so the schema allows
    // them: refusing them here would call requests invalid that are not.
    json!({ "type": "object", "required": required, "properties": properties })
}

fn page() -> Value {
    json!({
        "description": "An HTML page.",
        "content": { "text/html": { "schema": { "type": "string" } } }
    })
}

/// Every auth operation with what it takes and answers; [`Needs`] decides
/// which are served.
fn operations(settings: &Settings) -> Vec<Op> {
    let session = || {
        json_response(
            "Signed in: the session's tokens and the account.",
            schema_ref("kumo.auth.session"),
        )
    };
    let confirm = settings.confirm_email;
    let open = settings.registration == Registration::Open;
    let mut ops = Vec::new();

    // ---- magic links
    ops.push(Op {
        method: "post",
        path: "/auth/magic_link/request",
        needs: Needs::MagicLink,
        id: "auth.magic_link.request",
        summary: "Email a sign-in link and code",
        description: format!(
            "Always the same answer, after the same work, whether or not the address may sign \
             in, so it says nothing about who plays. The email holds a link \
             (`/auth/magic_link/{{token}}`) and a six-digit code, good for {} minutes.{} Poll \
             with the answer's `poll` to sign this device in when the link is used anywhere.",
            crate::auth::magic_link::TOKEN_MINUTES,
            if open {
                " The first link of a new address makes its account."
            } else {
                " An address with no account gets no email."
            }
        ),
        who: Who::Anyone,
        body: Some(object(
            &["email"],
            json!({ "email": email("Where to send the link.") }),
        )),
        answers: json!({ "200": json_response(
            "The link was sent if the address may sign in.",
            json!({
                "type": "object",
                "required": ["ok", "poll"],
                "additionalProperties": false,
                "properties": {
                    "ok": { "const": true },
                    "poll": {
                        "type": "object",
                        "required": ["id", "secret", "interval"],
                        "additionalProperties": false,
                        "properties": {
                            "id": { "type": "string", "format": "uuid" },
                            "secret": { "type": "string" },
                            "interval": {
                                "type": "integer",
                                "minimum": 1,
                                "description": "Seconds between polls."
                            }
                        }
                    }
                }
            }),
        )}),
        errors: vec![
            &NOT_AN_OBJECT,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    let token_or_code = json!({
        "type": "object",
        "description": "`token` (from the link), or `email` and `code`. With `token` present, \
                        the others are ignored.",
        "properties": {
            "token": text("The token from the link."),
            "email": email("The address the code was sent to."),
            "code": {
                "type": "string",
                "pattern": "^[0-9]{6}$",
                "description": "The six digits from the email (surrounding spaces ignored)."
            }
        },
        "anyOf": [{ "required": ["token"] }, { "required": ["email", "code"] }]
    });
    ops.push(Op {
        method: "post",
        path: "/auth/magic_link/sign_in",
        needs: Needs::MagicLink,
        id: "auth.magic_link.sign_in",
        summary: "Sign in with the emailed token or code",
        description: format!(
            "A link or code signs in once, even when used concurrently. A code allows {} tries \
             per link and {} an hour per address.",
            crate::auth::magic_link::CODE_ATTEMPTS,
            crate::auth::magic_link::CODE_ATTEMPTS_PER_HOUR
        ),
        who: Who::Anyone,
        body: Some(token_or_code),
        answers: json!({ "200": session() }),
        errors: vec![
            &NOT_AN_OBJECT,
            &LINK_REFUSED,
            &LOCKED,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/magic_link/poll",
        needs: Needs::MagicLink,
        id: "auth.magic_link.poll",
        summary: "Wait for the link to be used on any device",
        description: "202 until the link is used, then this device's own session, once. Polls \
                      count against the handle, not the client's allowance."
            .into(),
        who: Who::Anyone,
        body: Some(object(
            &["id", "secret"],
            json!({
                "id": {
                    "type": "string",
                    "format": "uuid",
                    "description": "`poll.id` of the request's answer."
                },
                "secret": text("`poll.secret` of the request's answer.")
            }),
        )),
        answers: json!({
            "200": session(),
            "202": json_response(
                "Not used yet: poll again after `interval` seconds.",
                json!({
                    "type": "object",
                    "required": ["ok", "status", "interval"],
                    "additionalProperties": false,
                    "properties": {
                        "ok": { "const": true },
                        "status": { "const": "pending" },
                        "interval": { "type": "integer", "minimum": 1 }
                    }
                }),
            )
        }),
        errors: vec![
            &NOT_AN_OBJECT,
            &LINK_REFUSED,
            &LOCKED,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "get",
        path: "/auth/magic_link/{token}",
        needs: Needs::MagicLink,
        id: "auth.magic_link.page",
        summary: "The emailed link: a page with a button",
        description: "Uses nothing up (mail scanners fetch links); its button posts back to \
                      the link. A path that is not UTF-8 is no link: 401, the invalid link's \
                      page."
            .into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": page() }),
        errors: vec![&RATE_LIMITED],
        pages: &["401"],
    });
    let mut signed_in_page = page();
    signed_in_page["description"] =
        json!("Signed in: the page tells the player to return to the game.");
    signed_in_page["headers"] = json!({ "Set-Cookie": {
        "description": "The browser's session cookie (`kumo_session`, or \
                        `__Host-kumo_session` when the public URL is HTTPS).",
        "required": true,
        "schema": { "type": "string" }
    }});
    ops.push(Op {
        method: "post",
        path: "/auth/magic_link/{token}",
        needs: Needs::MagicLink,
        id: "auth.magic_link.press",
        summary: "The page's button: sign this browser in",
        description: "Signs the browser in with a cookie; a game polling for this link gets \
                      its own session. Must come from the link's own page (a browser's \
                      `Sec-Fetch-Site` or `Origin`), else 403."
            .into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": signed_in_page }),
        errors: vec![],
        pages: &["401", "403", "429", "500", "503"],
    });

    // ---- sessions
    ops.push(Op {
        method: "post",
        path: "/auth/token/refresh",
        needs: Needs::Any,
        id: "auth.token.refresh",
        summary: "Trade a refresh token for a new pair",
        description: "A refresh token works once; presenting one already rotated signs its \
                      session out. A retry within 30 s (its answer was lost) gets the current \
                      pair again."
            .into(),
        who: Who::Anyone,
        body: Some(object(
            &["refresh_token"],
            json!({ "refresh_token": text("The session's latest refresh token.") }),
        )),
        answers: json!({ "200": session() }),
        errors: vec![
            &NOT_AN_OBJECT,
            &REFRESH_REFUSED,
            &LOCKED,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "get",
        path: "/auth/me",
        needs: Needs::Any,
        id: "auth.me",
        summary: "The signed-in account",
        description: String::new(),
        who: Who::SignedIn,
        body: None,
        answers: json!({ "200": json_response("The account.", schema_ref("user.one")) }),
        errors: vec![
            &UNAUTHENTICATED,
            &NOT_THE_CALLERS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "get",
        path: "/auth/sessions",
        needs: Needs::Any,
        id: "auth.sessions.list",
        summary: "The caller's signed-in devices, newest first",
        description: "From a session, not with an API key.".into(),
        who: Who::SessionOnly,
        body: None,
        answers: json!({ "200": json_response(
            "The devices.",
            envelope(json!({ "type": "array", "items": schema_ref("kumo.auth.device") })),
        )}),
        errors: vec![
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "delete",
        path: "/auth/sessions/{id}",
        needs: Needs::Any,
        id: "auth.sessions.revoke",
        summary: "Sign one of the caller's devices out",
        description: "From a session, not with an API key. Its access tokens stop working at \
                      once on this server, within seconds on the others."
            .into(),
        who: Who::SessionOnly,
        body: None,
        answers: json!({ "204": { "description": "Signed out." } }),
        errors: vec![
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &NOT_THE_CALLERS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    let cleared = json!({ "Set-Cookie": {
        "description": "Removes the browser's session cookie.",
        "required": true,
        "schema": { "type": "string" }
    }});
    let mut signed_out = json_response("Signed out.", schema_ref("kumo.auth.ok"));
    signed_out["headers"] = cleared.clone();
    ops.push(Op {
        method: "post",
        path: "/auth/sign_out",
        needs: Needs::Any,
        id: "auth.sign_out",
        summary: "End the caller's session",
        description: "Takes no body.".into(),
        who: Who::SignedIn,
        body: None,
        answers: json!({ "200": signed_out }),
        errors: vec![
            &NO_SESSION,
            &UNAUTHENTICATED,
            &CROSS_SITE,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    let mut everywhere = json_response(
        "Every session of the account is signed out.",
        schema_ref("kumo.auth.signed_out"),
    );
    everywhere["headers"] = cleared;
    ops.push(Op {
        method: "post",
        path: "/auth/sign_out_everywhere",
        needs: Needs::Any,
        id: "auth.sign_out_everywhere",
        summary: "End every session of the caller's account",
        description: "From a session, not with an API key. Takes no body. The account's API \
                      keys keep working: revoke them one by one."
            .into(),
        who: Who::SessionOnly,
        body: None,
        answers: json!({ "200": everywhere }),
        errors: vec![
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });

    // ---- API keys
    ops.push(Op {
        method: "get",
        path: "/auth/api_keys",
        needs: Needs::ApiKey,
        id: "auth.api_keys.list",
        summary: "The caller's API keys, newest first (revoked ones too)",
        description: "From a session, not with an API key.".into(),
        who: Who::SessionOnly,
        body: None,
        answers: json!({ "200": json_response(
            "The keys, never the keys themselves.",
            envelope(json!({ "type": "array", "items": schema_ref("kumo.auth.api_key") })),
        )}),
        errors: vec![
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/api_keys",
        needs: Needs::ApiKey,
        id: "auth.api_keys.create",
        summary: "Make an API key, shown this once",
        description: "From a session, not with an API key, so a leaked key cannot make itself \
                      a successor. The key acts as the caller, under the same policies."
            .into(),
        who: Who::SessionOnly,
        body: Some(object(
            &["name"],
            json!({
                "name": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": "\\S",
                    "description": "What the key is for (trimmed)."
                },
                "expires_at": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "When it stops working (RFC 3339); it must be in the future, \
                                    else 422. Absent or `null`: never."
                }
            }),
        )),
        answers: json!({ "201": json_response(
            "The key.",
            envelope(schema_ref("kumo.auth.api_key_created")),
        )}),
        errors: vec![
            &NOT_AN_OBJECT,
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "delete",
        path: "/auth/api_keys/{id}",
        needs: Needs::ApiKey,
        id: "auth.api_keys.revoke",
        summary: "Revoke one of the caller's API keys",
        description: "It stops working at once. Revoking a revoked key of one's own is a 204 \
                      too. From a session; an API key may revoke only itself (403 `forbidden` \
                      for any other key)."
            .into(),
        who: Who::SignedIn,
        body: None,
        answers: json!({ "204": { "description": "Revoked." } }),
        errors: vec![
            &UNAUTHENTICATED,
            &SESSION_ONLY,
            &NOT_THE_CALLERS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });

    // ---- passwords
    let mut register_answers = Map::new();
    let mut register_errors: Vec<&'static ErrorResponse> =
        vec![&NOT_AN_OBJECT, &INVALID_FIELDS, &RATE_LIMITED];
    if open {
        register_errors.extend([&TAKEN, &INTERNAL, &HASHING_BUSY]);
        if confirm {
            register_answers.insert(
                "202".into(),
                json_response(
                    "A confirmation link was mailed (or, when the address already has an \
                     account, a password-reset link to its owner).",
                    schema_ref("kumo.auth.confirmation_sent"),
                ),
            );
        } else {
            register_answers.insert(
                "201".into(),
                json_response("The account, signed in.", schema_ref("kumo.auth.session")),
            );
        }
    } else {
        // Refused before any hashing or database work.
        register_errors.push(&REGISTRATION_CLOSED);
    }
    ops.push(Op {
        method: "post",
        path: "/auth/password/register",
        needs: Needs::Password,
        id: "auth.password.register",
        summary: "Make an account with a password",
        description: match (open, confirm) {
            (false, _) => "This server does not take new accounts: always 403 once the body \
                           checks out."
                .to_owned(),
            (true, true) => "Mails a confirmation link; the account signs in once it is \
                             confirmed. An address that already has an account gets the same \
                             answer (its owner a reset link), so registering says nothing \
                             about who plays. A taken username is a 409."
                .to_owned(),
            (true, false) => {
                "Signs in at once. A taken email or username is a 409 naming it.".to_owned()
            }
        },
        who: Who::Anyone,
        body: Some(object(
            &["email", "password"],
            json!({
                "email": email("The account's address."),
                "password": new_password("The password, 8 to 128 characters."),
                "username": {
                    "type": ["string", "null"],
                    "pattern": "^[A-Za-z0-9_]{3,16}$",
                    "description": "Optional: 3 to 16 of `a-z0-9_`, stored lower-case."
                },
                "display_name": {
                    "type": ["string", "null"],
                    "maxLength": 64,
                    "description": "Optional."
                }
            }),
        )),
        answers: Value::Object(register_answers),
        errors: register_errors,
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/password/sign_in",
        needs: Needs::Password,
        id: "auth.password.sign_in",
        summary: "Sign in with an email address or username and a password",
        description: "A wrong password, an unknown account and one with no password are the \
                      same 401 after the same work. Only a right password learns that the \
                      account is locked or unconfirmed (403)."
            .into(),
        who: Who::Anyone,
        body: Some(json!({
            "type": "object",
            "description": "`email` or `username`, and `password`. With both, `email` is used.",
            "properties": {
                "email": email("The account's address."),
                "username": text("The account's username (lower-cased)."),
                "password": text("The password (not trimmed).")
            },
            "anyOf": [
                { "required": ["email", "password"] },
                { "required": ["username", "password"] }
            ]
        })),
        answers: json!({ "200": session() }),
        errors: vec![
            &NOT_AN_OBJECT,
            &CREDENTIALS_REFUSED,
            if confirm {
                &LOCKED_OR_UNCONFIRMED
            } else {
                &LOCKED
            },
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &HASHING_BUSY,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/password/reset_request",
        needs: Needs::Password,
        id: "auth.password.reset_request",
        summary: "Email a password-reset link",
        description: format!(
            "Always the same answer after the same work. An account that exists and is not \
             locked gets a link (`/auth/password/reset/{{token}}`), good for {} minutes, once.",
            crate::auth::password::RESET_MINUTES
        ),
        who: Who::Anyone,
        body: Some(object(
            &["email"],
            json!({ "email": email("The account's address.") }),
        )),
        answers: json!({ "200": json_response("Sent if the account exists.", schema_ref("kumo.auth.ok")) }),
        errors: vec![
            &NOT_AN_OBJECT,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/password/reset",
        needs: Needs::Password,
        id: "auth.password.reset",
        summary: "Set a new password with the reset link's token",
        description: "Sets the password, counts the address as confirmed, signs every device \
                      of the account out and answers a session for this one. A refused \
                      password (422) leaves the link working."
            .into(),
        who: Who::Anyone,
        body: Some(object(
            &["token", "password"],
            json!({
                "token": text("The token from the link."),
                "password": new_password("The new password, 8 to 128 characters.")
            }),
        )),
        answers: json!({ "200": session() }),
        errors: vec![
            &NOT_AN_OBJECT,
            &LINK_REFUSED,
            &LOCKED,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &HASHING_BUSY,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "get",
        path: "/auth/password/reset/{token}",
        needs: Needs::Password,
        id: "auth.password.reset_page",
        summary: "The emailed reset link: a form for the new password",
        description: "Uses nothing up; the form posts back to the link.".into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": page() }),
        errors: vec![&RATE_LIMITED],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/password/reset/{token}",
        needs: Needs::Password,
        id: "auth.password.reset_form",
        summary: "The reset form: set the new password",
        description: "Form-encoded (`password=…`), from the link's own page (a browser's \
                      `Sec-Fetch-Site` or `Origin`), else 403. Every device of the account is \
                      signed out."
            .into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": page() }),
        errors: vec![],
        pages: &["401", "403", "422", "429", "500", "503"],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/password/change",
        needs: Needs::Password,
        id: "auth.password.change",
        summary: "Change the caller's password",
        description: "From a session, not with an API key. Every other device of the account \
                      is signed out; this one stays. A wrong `current_password` (or an \
                      account with no password yet) is a 422 naming it."
            .into(),
        who: Who::SessionOnly,
        body: Some(object(
            &["current_password", "new_password"],
            json!({
                "current_password": text("The password now."),
                "new_password": new_password("The new password, 8 to 128 characters.")
            }),
        )),
        answers: json!({ "200": json_response("Changed.", schema_ref("kumo.auth.signed_out")) }),
        errors: vec![
            &NOT_AN_OBJECT,
            &CALLER_OR_ACCOUNT_REFUSED,
            &SESSION_ONLY,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &HASHING_BUSY,
        ],
        pages: &[],
    });

    // ---- email addresses
    let mut change_errors: Vec<&'static ErrorResponse> = vec![
        &NOT_AN_OBJECT,
        &CALLER_OR_ACCOUNT_REFUSED,
        &SESSION_ONLY_RECENT,
        &INVALID_FIELDS,
        &RATE_LIMITED,
        &INTERNAL,
        &UNAVAILABLE,
    ];
    let change_answer = if confirm {
        json!({ "202": json_response(
            "A confirmation link was mailed to the new address (none when it is taken); the \
             address changes when it is followed.",
            schema_ref("kumo.auth.confirmation_sent"),
        )})
    } else {
        change_errors.push(&TAKEN);
        json!({ "200": json_response(
            "The account, with the new address, unconfirmed.",
            schema_ref("user.one"),
        )})
    };
    ops.push(Op {
        method: "post",
        path: "/auth/email/change",
        needs: Needs::Any,
        id: "auth.email.change",
        summary: "Change the caller's email address",
        description: "From a session, not with an API key. An account with a password must give \
             it as `current_password` (422 naming it when missing or wrong); one without must \
             have signed in on this session within the last 10 minutes (403 \
             `reauthentication_required`). The account's own address is a 422. Once the address \
             changes, the old one is mailed a notice."
            .into(),
        who: Who::SessionOnly,
        body: Some(object(
            &["email"],
            json!({
                "email": email("The new address."),
                "current_password": {
                    "type": ["string", "null"],
                    "description": "The account's password; required when it has one.",
                },
            }),
        )),
        answers: change_answer,
        errors: change_errors,
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/email/confirm",
        needs: Needs::Any,
        id: "auth.email.confirm",
        summary: "Confirm an address with the emailed link's token",
        description: format!(
            "The link is good for {} hours, once; the account's address becomes the one it \
             was sent to.",
            crate::auth::password::CONFIRM_MINUTES / 60
        ),
        who: Who::Anyone,
        body: Some(object(
            &["token"],
            json!({ "token": text("The token from the link.") }),
        )),
        answers: json!({ "200": json_response("The confirmed account.", schema_ref("user.one")) }),
        errors: vec![
            &NOT_AN_OBJECT,
            &LINK_REFUSED,
            &TAKEN,
            &INVALID_FIELDS,
            &RATE_LIMITED,
            &INTERNAL,
            &UNAVAILABLE,
        ],
        pages: &[],
    });
    ops.push(Op {
        method: "get",
        path: "/auth/email/confirm/{token}",
        needs: Needs::Any,
        id: "auth.email.confirm_page",
        summary: "The emailed confirmation link: a page with a button",
        description: "Uses nothing up; its button posts back to the link.".into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": page() }),
        errors: vec![&RATE_LIMITED],
        pages: &[],
    });
    ops.push(Op {
        method: "post",
        path: "/auth/email/confirm/{token}",
        needs: Needs::Any,
        id: "auth.email.confirm_press",
        summary: "The page's button: confirm the address",
        description: "From the link's own page (a browser's `Sec-Fetch-Site` or `Origin`), else \
                      403."
            .into(),
        who: Who::Anyone,
        body: None,
        answers: json!({ "200": page() }),
        errors: vec![],
        pages: &["401", "403", "409", "429", "500", "503"],
    });
    ops
}

/// The security schemes of a server that signs callers in, and the API's
/// refusals that signing in adds.
pub(super) fn security_schemes(settings: &Settings) -> Value {
    let cookie = if settings.public_url.starts_with("https://") {
        COOKIE_SECURE
    } else {
        COOKIE_PLAIN
    };
    json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": format!(
                "An access token from a sign-in (`access_token`), good for {} minutes. \
                 Optional on the resource API: without a credential the request is anonymous, \
                 and the resources' policies decide what an anonymous caller may do. A \
                 credential that does not check out is refused with 401.",
                settings.access_ttl.whole_minutes()
            )
        },
        "api_key": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`kumo_…`, from `POST /auth/api_keys`) sent as a bearer \
                            token: the request acts as the key's owner."
        },
        "cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": cookie,
            "description": "The browser's session cookie, set when a magic link is confirmed in \
                            it. A request that changes something must come from this server's \
                            own pages (`Sec-Fetch-Site: same-origin`, or an `Origin` equal to the \
                            public URL's), else 403 `cross_site_request`."
        }
    })
}
