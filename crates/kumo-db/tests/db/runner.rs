//! The runner's bookkeeping: which migration a rollback undoes.

use kumo_db::files::Migration;
use kumo_db::runner;
use kumo_db::sql::Dialect;

use crate::harness::TestDb;

fn create_table(id: &str, table: &str) -> Migration {
    let up = format!("CREATE TABLE \"{table}\" (\"id\" TEXT PRIMARY KEY);\n");
    let down = format!("DROP TABLE \"{table}\";\n");
    Migration {
        id: id.to_string(),
        postgres_up: up.clone(),
        postgres_down: down.clone(),
        sqlite_up: up,
        sqlite_down: down,
    }
}

/// After a merge, a branch's migration with an earlier id is applied after
/// main's; rolling back one step must undo what was applied last, not the
/// highest id.
async fn rollback_undoes_the_most_recently_applied(dialect: Dialect) {
    let t = TestDb::new(dialect).await;
    let from_branch = create_table("20260101000000_from_branch", "branch_things");
    let on_main = create_table("20260102000000_on_main", "main_things");
    let all = [from_branch.clone(), on_main.clone()];
    let applied = runner::migrate(&t.db, std::slice::from_ref(&on_main))
        .await
        .unwrap();
    assert_eq!(applied, [on_main.id.as_str()]);
    let applied = runner::migrate(&t.db, &all).await.unwrap();
    assert_eq!(applied, [from_branch.id.as_str()]);
    let undone = runner::rollback(&t.db, &all, 1).await.unwrap();
    assert_eq!(undone, [from_branch.id.as_str()], "{}", t.name());
    let undone = runner::rollback(&t.db, &all, 1).await.unwrap();
    assert_eq!(undone, [on_main.id.as_str()], "{}", t.name());
    t.cleanup().await;
}

#[tokio::test]
async fn rollback_undoes_the_most_recently_applied_on_postgres() {
    rollback_undoes_the_most_recently_applied(Dialect::Postgres).await;
}

#[tokio::test]
async fn rollback_undoes_the_most_recently_applied_on_sqlite() {
    rollback_undoes_the_most_recently_applied(Dialect::Sqlite).await;
}
