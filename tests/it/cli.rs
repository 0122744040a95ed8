//! The `mcpgate` binary: first start generates secrets into a 0600 key file and prints the admin
//! login once; `token` signs with the same secret; `migrate`; invalid settings fail fast.

#![allow(
    clippy::disallowed_methods,
    reason = "tests are the gateway's clients, with clients of their own"
)]

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{Backend, TestDb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_mcpgate");

fn command(database_url: &str, workdir: &std::path::Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("HTTP_WORKERS", "1")
        .env("LOG_LEVEL", "warn")
        .current_dir(workdir)
        .kill_on_drop(true);
    if database_url.starts_with("postgres") {
        // PostgreSQL never generates secrets: the replicas of a deployment share a key file.
        command.env("SECRETS_FILE", workdir.join("mcpgate.secrets"));
    }
    command
}

/// Where the key file of `database_url` is: beside an SQLite database, else in the workdir.
fn key_file(database_url: &str, workdir: &std::path::Path) -> std::path::PathBuf {
    match database_url.strip_prefix("sqlite://") {
        Some(path) => std::path::Path::new(path).with_extension("secrets"),
        None => workdir.join("mcpgate.secrets"),
    }
}

/// Starts `mcpgate serve`, returns the child, its base URL and everything it printed first.
async fn serve(database_url: &str, workdir: &std::path::Path) -> (Child, String, String) {
    serve_with(database_url, workdir, &[]).await
}

/// [`serve`] with more environment variables.
pub(crate) async fn serve_with(
    database_url: &str,
    workdir: &std::path::Path,
    env: &[(&str, &str)],
) -> (Child, String, String) {
    // Its log goes to a file, as under a service manager (`serve.log` in `workdir`).
    let log = std::fs::File::create(workdir.join("serve.log")).expect("a log file");
    let mut child = command(database_url, workdir)
        .arg("serve")
        .env("LOG_LEVEL", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start mcpgate");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(address) = line.strip_prefix("mcpgate listening on ") {
                return address.to_owned();
            }
        }
        panic!("mcpgate exited before listening: {printed}");
    })
    .await
    .expect("mcpgate starts listening");
    (child, base, printed)
}

pub(crate) async fn stop(mut child: Child) {
    let pid = child.id().expect("running") as i32;
    // SIGTERM: graceful shutdown.
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .unwrap();
    assert!(exit.success(), "graceful stop exits 0, got {exit}");
}

async fn first_start_bootstrap_and_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let workdir = tempfile::tempdir().unwrap();
    let url = db.url();

    let (child, base, printed) = serve(&url, workdir.path()).await;
    assert!(printed.contains("email:    admin@example.com"), "{printed}");
    assert!(
        printed.contains(&format!("admin console: {base}/admin")),
        "{printed}"
    );
    // The root sends a browser to the console; no colour codes reach a file.
    let root = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), reqwest::StatusCode::FOUND);
    assert_eq!(root.headers()["location"], "/admin");
    let password_line = printed
        .lines()
        .find(|line| line.contains("password: "))
        .expect("password printed");
    assert!(password_line.trim().trim_start_matches("password: ").len() >= 16);
    stop(child).await;
    // Written to a file, the log carries no colour codes.
    let log = std::fs::read_to_string(workdir.path().join("serve.log")).unwrap();
    assert!(log.contains("mcpgate listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
    // The generated secrets are in a key file only the gateway's user reads, not the database.
    {
        use std::os::unix::fs::PermissionsExt;
        let key_file = key_file(&url, workdir.path());
        let mode = std::fs::metadata(&key_file)
            .unwrap_or_else(|error| panic!("{}: {error}", key_file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let keys: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
        assert!(keys["jwt_secret"].as_str().unwrap().len() >= 64, "{keys}");
        assert!(keys["encryption_secret"].as_str().unwrap().len() >= 64);
        let stored = common::sql_texts(&db, "SELECT name AS value FROM bootstrap_secrets").await;
        assert_eq!(stored, Vec::<String>::new());
    }

    let (child, base, printed) = serve(&url, workdir.path()).await;
    assert!(
        !printed.contains("password"),
        "the admin login is printed only once: {printed}"
    );

    let output = command(&url, workdir.path())
        .args([
            "token",
            "--email",
            "admin@example.com",
            "--exp-minutes",
            "5",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();

    let client = reqwest::Client::new();
    let stats = client
        .get(format!("{base}/admin/pool-stats"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stats.status(),
        200,
        "a CLI token works against the running gateway"
    );
    // A token for someone who has no account is refused; once the account exists, the token
    // carries what its roles grant.
    let nobody = command(&url, workdir.path())
        .args(["token", "--email", "dev@example.com"])
        .output()
        .await
        .unwrap();
    assert!(!nobody.status.success());
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("no active user dev@example.com"),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );
    let created = client
        .post(format!("{base}/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"email": "dev@example.com", "password": "correct horse battery staple"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user_token = command(&url, workdir.path())
        .args(["token", "--email", "dev@example.com"])
        .output()
        .await
        .unwrap();
    let user_token = String::from_utf8(user_token.stdout)
        .unwrap()
        .trim()
        .to_owned();
    let forbidden = client
        .get(format!("{base}/admin/pool-stats"))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        forbidden.status(),
        403,
        "a developer's token is not an admin token"
    );
    let tools = client
        .get(format!("{base}/tools"))
        .bearer_auth(&user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(tools.status(), 200);
    stop(child).await;

    let migrate = command(&url, workdir.path())
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(migrate.status.success());
    assert_eq!(
        String::from_utf8_lossy(&migrate.stdout).trim(),
        "applied 0 migration(s)"
    );

    // An explicit password wins over the generated one at the next start.
    let (child, base, _) = {
        let mut command = command(&url, workdir.path());
        command.env("PLATFORM_ADMIN_PASSWORD", "an-explicit-admin-password");
        let mut child = command.arg("serve").stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut base = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(address) = line.strip_prefix("mcpgate listening on ") {
                base = address.to_owned();
                break;
            }
        }
        (child, base, ())
    };
    assert!(
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    stop(child).await;
}

both_backends!(first_start_bootstrap_and_token);

/// `mcpgate health` (the container's health check) asks the running gateway on its own port:
/// 0 while it is up (and ready, with `--ready`), 1 once it is gone.
#[actix_rt::test]
async fn the_health_command_asks_the_running_gateway() {
    let workdir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", workdir.path().join("mcpgate.db").display());
    let (child, base, _) = serve(&url, workdir.path()).await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let health = |ready: bool| {
        let mut health = command(&url, workdir.path());
        health
            .env("PORT", &port)
            .env("HOST", "0.0.0.0")
            .arg("health");
        if ready {
            health.arg("--ready");
        }
        health.output()
    };
    for ready in [false, true] {
        let output = health(ready).await.unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    stop(child).await;
    let gone = health(false).await.unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("/health"));
}

#[actix_rt::test]
async fn invalid_settings_fail_fast_naming_the_variable() {
    let workdir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("PORT", "not-a-port"),
        ("DB_POOL_SIZE", "0"),
        ("LOG_FORMAT", "xml"),
    ] {
        let output = command("sqlite://./x.db", workdir.path())
            .env(variable, value)
            .arg("serve")
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(variable));
    }
    let bad_email = command("sqlite://./x.db", workdir.path())
        .args(["token", "--email", "nobody"])
        .output()
        .await
        .unwrap();
    assert!(!bad_email.status.success());
    assert!(
        !workdir.path().join("x.db").exists(),
        "nothing is created by a refused start"
    );
}
