//! `kumo user`: create (and sign in through the printed link), set-role,
//! lock and unlock, on SQLite and on PostgreSQL, checked in the database
//! itself and against a running server.

use crate::{Kumo, Server, http_post, http_post_json};

/// The first column of every row `sql` selects, as text (the queries cast,
/// so one helper reads both databases).
fn column(k: &Kumo, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match &k.database_url {
            Some(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                let rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&pool)
                    .await
                    .expect(sql);
                pool.close().await;
                rows
            }
            None => {
                let url = format!("sqlite://{}", k.path("app/data/kumo.db").display());
                let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
                let rows = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&pool)
                    .await
                    .expect(sql);
                pool.close().await;
                rows
            }
        }
    })
}

fn one(k: &Kumo, sql: &str) -> String {
    let mut rows = column(k, sql);
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows.remove(0)
}

/// `kumo user …` on the project `app`.
fn user(k: &Kumo, args: &[&str]) -> crate::Run {
    let mut all = vec!["user"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--project", "app"]);
    k.run(&all)
}

/// The JSON string field `name` of `body`.
fn field(body: &str, name: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).expect(body);
    value["data"][name]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{name} in {body}"))
        .to_owned()
}

fn user_commands(k: &Kumo) {
    k.set_up_project();

    // Regression: `--username Alice` was refused for its capital, while
    // registering over HTTP trims and lowers a username; the CLI now
    // does the same.
    let created = user(
        k,
        &[
            "create",
            "A@Example.com",
            "--role",
            "admin",
            "--username",
            " Alice ",
        ],
    )
    .ok();
    assert!(
        created
            .stdout
            .contains("Created a@example.com (admin, username alice)."),
        "{}",
        created.stdout
    );
    assert!(
        created.stdout.contains("valid for 15 minutes, once"),
        "{}",
        created.stdout
    );
    let link = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:4000/auth/magic_link/"))
        .unwrap_or_else(|| panic!("no link in {}", created.stdout));
    let token = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(
        one(
            k,
            "SELECT role || ' ' || username || ' ' || CASE WHEN email_confirmed_at IS NULL THEN 'unconfirmed' ELSE 'confirmed' END FROM users WHERE email = 'a@example.com'"
        ),
        "admin alice unconfirmed"
    );

    // Refusals: each says what is wrong, and changes nothing.
    let again = user(k, &["create", "a@example.com"]).fails();
    assert!(
        again
            .stderr
            .contains("an account with the email a@example.com already exists"),
        "{}",
        again.stderr
    );
    let taken = user(k, &["create", "b@example.com", "--username", "ALICE"]).fails();
    assert!(
        taken.stderr.contains("the username alice is taken"),
        "{}",
        taken.stderr
    );
    let bad_email = user(k, &["create", "not-an-email"]).fails();
    assert!(
        bad_email
            .stderr
            .contains("the email `not-an-email` is not an email address"),
        "{}",
        bad_email.stderr
    );
    let bad_role = user(k, &["create", "b@example.com", "--role", "boss"]).fails();
    assert!(
        bad_role
            .stderr
            .contains("`boss` is not a role; give user, coordinator or admin"),
        "{}",
        bad_role.stderr
    );
    let bad_username = user(k, &["create", "b@example.com", "--username", "Al"]).fails();
    assert!(
        bad_username
            .stderr
            .contains("the username `Al` must be 3 to 16 characters of a-z, 0-9 and _"),
        "{}",
        bad_username.stderr
    );
    let mut no_secret = k.command(&["user", "create", "b@example.com", "--project", "app"]);
    no_secret.env("KUMO_SECRET", "");
    let no_secret = crate::Run::from(no_secret.output().unwrap()).fails();
    assert!(
        no_secret.stderr.contains(
            "KUMO_SECRET is not set, and the sign-in link must be made with the server's secret"
        ),
        "{}",
        no_secret.stderr
    );
    assert_eq!(one(k, "SELECT CAST(COUNT(*) AS TEXT) FROM users"), "1");

    // The printed link signs in on the server, as the emailed one would.
    let server = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts");
    let signed_in = http_post_json(
        &server.addr,
        "/auth/magic_link/sign_in",
        &format!("{{\"token\":\"{token}\"}}"),
    );
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let refresh_token = field(&signed_in.body, "refresh_token");
    let used_again = http_post_json(
        &server.addr,
        "/auth/magic_link/sign_in",
        &format!("{{\"token\":\"{token}\"}}"),
    );
    assert_eq!(used_again.status, 401, "once: {}", used_again.body);

    let changed = user(k, &["set-role", "a@example.com", "coordinator"]).ok();
    assert!(
        changed
            .stdout
            .contains("a@example.com: admin → coordinator"),
        "{}",
        changed.stdout
    );
    assert_eq!(
        one(k, "SELECT role FROM users WHERE email = 'a@example.com'"),
        "coordinator"
    );
    let nobody = user(k, &["set-role", "nobody@example.com", "admin"]).fails();
    assert!(
        nobody
            .stderr
            .contains("there is no account with the email nobody@example.com"),
        "{}",
        nobody.stderr
    );
    let bad_role = user(k, &["set-role", "a@example.com", "root"]).fails();
    assert!(
        bad_role.stderr.contains("give user, coordinator or admin"),
        "{}",
        bad_role.stderr
    );

    let locked = user(k, &["lock", "a@example.com"]).ok();
    assert!(
        locked.stdout.contains("Locked a@example.com")
            && locked.stdout.contains("Signed out 1 session(s)."),
        "{}",
        locked.stdout
    );
    assert_eq!(
        one(
            k,
            "SELECT CASE WHEN locked_at IS NULL THEN 'unlocked' ELSE 'locked' END FROM users WHERE email = 'a@example.com'"
        ),
        "locked"
    );
    assert_eq!(
        one(
            k,
            "SELECT CAST(COUNT(*) AS TEXT) FROM sessions WHERE revoked_at IS NULL"
        ),
        "0"
    );
    let refused = http_post_json(
        &server.addr,
        "/auth/token/refresh",
        &format!("{{\"refresh_token\":\"{refresh_token}\"}}"),
    );
    // Locking revoked the session too, but the refresh says why it ended.
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("account_locked"), "{}", refused.body);
    let again = user(k, &["lock", "a@example.com"]).ok();
    assert!(
        again.stdout.contains("a@example.com was already locked.")
            && again.stdout.contains("Signed out 0 session(s)."),
        "{}",
        again.stdout
    );

    let unlocked = user(k, &["unlock", "a@example.com"]).ok();
    assert!(
        unlocked.stdout.contains("Unlocked a@example.com"),
        "{}",
        unlocked.stdout
    );
    assert_eq!(
        one(
            k,
            "SELECT CASE WHEN locked_at IS NULL THEN 'unlocked' ELSE 'locked' END FROM users WHERE email = 'a@example.com'"
        ),
        "unlocked"
    );
    let again = user(k, &["unlock", "a@example.com"]).ok();
    assert!(
        again.stdout.contains("is not locked; nothing changed"),
        "{}",
        again.stdout
    );

    // Each change is in the audit log, made by the CLI, for that account.
    assert_eq!(
        column(
            k,
            "SELECT kind FROM audit_events WHERE outcome = 'success' AND strategy IS NULL AND user_id = (SELECT id FROM users WHERE email = 'a@example.com') ORDER BY inserted_at, id"
        ),
        [
            "user_created",
            "role_changed",
            "user_locked",
            "user_unlocked"
        ]
    );
    drop(server);
}

#[test]
fn user_commands_on_sqlite() {
    user_commands(&Kumo::new());
}

#[test]
fn user_commands_on_postgres() {
    user_commands(&Kumo::postgres());
}

#[test]
fn user_commands_need_a_sign_in_strategy() {
    let k = Kumo::new();
    k.run(&["new", "app"]).ok();
    // The example resources refer to `user`, which needs a strategy: one of
    // the project's own instead.
    for dir in ["app/resources", "app/seeds"] {
        std::fs::remove_dir_all(k.path(dir)).unwrap();
        std::fs::create_dir(k.path(dir)).unwrap();
    }
    k.write(
        "app/resources/badge.toml",
        "[resource]\nname = \"badge\"\n\n[attributes]\nlabel = { type = \"string\" }\n",
    );
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    k.run(&["setup", "--project", "app"]).ok();
    let refused = user(&k, &["lock", "a@example.com"]).fails();
    assert!(
        refused
            .stderr
            .contains("no sign-in strategy is enabled, so the project has no accounts: run `kumo auth add-strategy magic_link`"),
        "{}",
        refused.stderr
    );
}

/// A set-up project `app` with `strategy` its only sign-in strategy.
fn project_with(k: &Kumo, strategy: &str) {
    k.run(&["new", "app"]).ok();
    k.run(&["auth", "add-strategy", strategy, "--project", "app"])
        .ok();
    k.run(&["codegen", "initial", "--project", "app"]).ok();
    k.run(&["db", "create", "--project", "app"]).ok();
    k.run(&["setup", "--project", "app"]).ok();
}

/// Regression: with only passwords enabled, `kumo user create` printed a
/// magic link, which that server answers 404. It prints a password-reset
/// link instead, which sets the first password once.
fn create_prints_a_password_link(k: &Kumo) {
    project_with(k, "password");
    // The reset token is not sealed, so the server's secret is not needed.
    let mut created = k.command(&[
        "user",
        "create",
        "P@Example.com",
        "--username",
        "pat",
        "--project",
        "app",
    ]);
    created.env("KUMO_SECRET", "");
    let created = crate::Run::from(created.output().unwrap()).ok();
    assert!(
        created
            .stdout
            .contains("Created p@example.com (user, username pat).")
            && created
                .stdout
                .contains("This link sets its first password (valid for 60 minutes, once):")
            && !created.stdout.contains("magic_link")
            && !created.stdout.contains("code"),
        "{}",
        created.stdout
    );
    let link = created
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:4000/auth/password/reset/"))
        .unwrap_or_else(|| panic!("no reset link in {}", created.stdout));
    let token = link.rsplit('/').next().unwrap().to_owned();
    // The row the server's reset route looks for: its hash, for this
    // account, unused.
    assert_eq!(
        one(
            k,
            "SELECT t.purpose || ' ' || t.token_hash || ' ' || CASE WHEN t.used_at IS NULL THEN 'unused' ELSE 'used' END FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = 'p@example.com'"
        ),
        format!("password_reset {} unused", kumo_auth::secret::hash(&token))
    );
    assert_eq!(
        column(
            k,
            "SELECT kind FROM audit_events WHERE user_id = (SELECT id FROM users WHERE email = 'p@example.com')"
        ),
        ["user_created"]
    );

    let server = Server::start(k.command(&["serve", "--addr", "127.0.0.1:0", "--project", "app"]))
        .expect("serve starts");
    let path = format!("/auth/password/reset/{token}");
    let (status, page) = server.get(&path);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("type=\"password\""), "{page}");
    let password = "correct horse battery staple";
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let set = http_post(
        &server.addr,
        &path,
        &form,
        "password=correct+horse+battery+staple",
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let signed_in = http_post_json(
        &server.addr,
        "/auth/password/sign_in",
        &format!("{{\"username\":\"pat\",\"password\":\"{password}\"}}"),
    );
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    assert_eq!(field(&signed_in.body, "token_type"), "Bearer");
    // Once: the link is used up.
    let again = http_post(
        &server.addr,
        &path,
        &form,
        "password=another+long+passphrase+here",
    );
    assert_eq!(again.status, 401, "{}", again.body);
    drop(server);
}

#[test]
fn create_prints_a_password_link_without_magic_links_on_sqlite() {
    create_prints_a_password_link(&Kumo::new());
}

#[test]
fn create_prints_a_password_link_without_magic_links_on_postgres() {
    create_prints_a_password_link(&Kumo::postgres());
}

/// API keys alone give accounts but no way to sign in for the first
/// time: `kumo user create` refuses, and makes nothing.
#[test]
fn create_needs_a_strategy_to_sign_in_with() {
    let k = Kumo::new();
    project_with(&k, "api_key");
    let refused = user(&k, &["create", "a@example.com"]).fails();
    assert!(
        refused.stderr.contains(
            "[auth] strategies enables neither `magic_link` nor `password`: run `kumo auth add-strategy magic_link` (or `password`)"
        ),
        "{}",
        refused.stderr
    );
    assert_eq!(one(&k, "SELECT CAST(COUNT(*) AS TEXT) FROM users"), "0");
}

/// Regression: with `[server] addr = "0.0.0.0:4000"` and no `public_url`,
/// the printed link pointed to `http://0.0.0.0:4000`, which no browser
/// opens; it points to loopback on the same port, as the server's emails
/// do.
#[test]
fn create_links_to_loopback_for_a_server_on_every_address() {
    let k = Kumo::new();
    project_with(&k, "password");
    let config = std::fs::read_to_string(k.path("app/kumo.toml")).unwrap();
    let config = config
        .replace("addr = \"127.0.0.1:4000\"", "addr = \"0.0.0.0:4000\"")
        .replace("public_url = \"http://127.0.0.1:4000\"\n", "");
    assert!(
        config.contains("0.0.0.0:4000") && !config.contains("public_url ="),
        "{config}"
    );
    k.write("app/kumo.toml", &config);
    let created = user(&k, &["create", "p@example.com"]).ok();
    assert!(
        created
            .stdout
            .contains("\n  http://127.0.0.1:4000/auth/password/reset/"),
        "{}",
        created.stdout
    );
}
