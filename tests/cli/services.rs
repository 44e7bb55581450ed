//! `scripts/services.sh`, the PostgreSQL part, with `psql` and
//! `pg_ctlcluster` replaced by scripts that play a Debian cluster: the real
//! ones would change the machine's PostgreSQL under the other tests.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// What Debian's package writes: passwords for TCP connections.
const DEBIAN_HBA: &str = "local all postgres peer\nhost all all 127.0.0.1/32 scram-sha-256\n";

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `services.sh postgres` against a stand-in cluster that is already
/// `running` (as Debian's postinst leaves it) or not. The stand-in lets
/// `postgres` in only once it was reloaded or started after the edit.
/// Returns the script's success, pg_hba.conf afterwards and the
/// pg_ctlcluster calls.
fn run_services(running: bool) -> (bool, String, String) {
    let dir = TempDir::new().unwrap();
    let bin = dir.path().join("bin");
    let state = dir.path().join("state");
    let hba = dir.path().join("etc/15/main/pg_hba.conf");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::create_dir_all(hba.parent().unwrap()).unwrap();
    std::fs::write(&hba, DEBIAN_HBA).unwrap();
    write_script(&bin.join("psql"), "[ -e \"$STUB_STATE/trusted\" ]");
    let status = if running { "exit 0" } else { "exit 3" };
    write_script(
        &bin.join("pg_ctlcluster"),
        &format!(
            "echo \"$*\" >> \"$STUB_STATE/calls\"\ncase \" $* \" in\n  *\" status \"*) {status} ;;\n  *\" reload \"*|*\" start \"*) grep -q '^host all all 127.0.0.1/32 trust' \"$STUB_HBA\" && touch \"$STUB_STATE/trusted\" ;;\nesac"
        ),
    );
    write_script(&bin.join("sudo"), "exec \"$@\"");
    write_script(
        &bin.join("apt-get"),
        "echo 'apt-get must not run' >&2; exit 1",
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/services.sh"))
        .arg("postgres")
        .env("PATH", path)
        .env("POSTGRES_ETC", dir.path().join("etc"))
        .env("STUB_STATE", &state)
        .env("STUB_HBA", &hba)
        .output()
        .expect("run services.sh");
    if !output.status.success() {
        eprintln!(
            "services.sh:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    (
        output.status.success(),
        std::fs::read_to_string(&hba).unwrap(),
        std::fs::read_to_string(state.join("calls")).unwrap_or_default(),
    )
}

/// Debian's postinst starts the cluster: editing pg_hba.conf then does
/// nothing until the cluster is reloaded.
#[test]
fn services_reloads_a_running_cluster_after_adding_the_trust_rule() {
    let (ok, hba, calls) = run_services(true);
    assert!(
        hba.starts_with("host all all 127.0.0.1/32 trust\n"),
        "{hba}"
    );
    assert!(calls.contains("15 main reload"), "{calls}");
    assert!(!calls.contains(" start"), "{calls}");
    assert!(ok, "services.sh failed");
}

#[test]
fn services_starts_a_stopped_cluster_after_adding_the_trust_rule() {
    let (ok, hba, calls) = run_services(false);
    assert!(
        hba.starts_with("host all all 127.0.0.1/32 trust\n"),
        "{hba}"
    );
    assert!(calls.contains("15 main start"), "{calls}");
    assert!(ok, "services.sh failed");
}
