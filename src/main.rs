//! The `mcpgate` binary: `serve` (default), `migrate`, `token`.

use std::process::ExitCode;

/// mimalloc: the request path allocates many small, short-lived buffers (JSON, headers), which
/// glibc's allocator served at several percent of the gateway's CPU under load (profiled with
/// loadtest's fastpath scenario).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mcpgate::app;
use mcpgate::config::Settings;

/// mcpgate: a Model Context Protocol gateway. Settings come from the environment and `.env`.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// List every setting: its environment variable, its default and what it means.
    Settings,
    /// Print a signed JWT for `Authorization: Bearer …` for an existing, active user (what
    /// it may do is what the account's roles grant).
    Token {
        /// The user the token is for.
        #[arg(long)]
        email: String,
        /// Minutes until it expires (1 to 525600).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=525_600))]
        exp_minutes: u64,
    },
}

fn main() -> ExitCode {
    // The prompt-template sandbox: a child of the gateway, no settings, no database.
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some(mcpgate::prompt_render::SUBCOMMAND) {
        return mcpgate::prompt_render::child_main(&arguments[2..]);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Settings)) {
        use std::io::Write;
        // Written without panicking when the reader goes away (`mcpgate settings | head`).
        let mut out = std::io::stdout().lock();
        for (variable, default, help) in Settings::describe() {
            let default = default.map_or_else(String::new, |value| format!(" (default {value:?})"));
            if writeln!(
                out,
                "{variable}{default}\n    {}",
                help.replace('\n', "\n    ")
            )
            .is_err()
            {
                break;
            }
        }
        return ExitCode::SUCCESS;
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("mcpgate: {error}");
            return ExitCode::from(2);
        }
    };
    mcpgate::logs::install(&settings.log);
    let outcome = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Token { email, exp_minutes } => token(settings, email, exp_minutes).await,
            Command::Settings => Ok(()),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mcpgate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before the server starts, so SIGTERM/SIGINT always stop it gracefully.
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|error| format!("cannot install the SIGTERM handler: {error}"))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|error| format!("cannot install the SIGINT handler: {error}"))?;
    let server = app::start(settings).await?;
    let stop = server.stopper();
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tracing::info!("stopping: finishing in-flight requests");
        stop.stop().await;
    });
    if let Some(admin) = &server.generated_admin {
        println!(
            "\nmcpgate created the platform admin (shown once; only a hash is stored):\n  \
             email:    {}\n  password: {}\nSign in at http://{}/admin, then choose your own password \
             at /admin/account (or set PLATFORM_ADMIN_PASSWORD before the first start).\n",
            admin.email, admin.password, server.addr
        );
    }
    println!("admin console: http://{}/admin", server.addr);
    println!("mcpgate listening on http://{}", server.addr);
    server
        .wait()
        .await
        .map_err(|error| format!("server error: {error}"))
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let applied = mcpgate::actors::db::migrate(&settings.database).await?;
    println!("applied {} migration(s)", applied.len());
    Ok(())
}

async fn token(settings: Settings, email: String, exp_minutes: u64) -> Result<(), String> {
    let email = email.to_ascii_lowercase();
    if !mcpgate::config::looks_like_email(&email) {
        return Err(format!("--email {email:?} is not an email address"));
    }
    let db = mcpgate::actors::db::start(&settings.database).await?;
    let keys = match mcpgate::bootstrap::secrets(&db, &settings.auth).await {
        Ok(secrets) => secrets.jwt_keys(&settings.auth),
        Err(error) => Err(error),
    };
    let user = db
        .run(mcpgate::db::bootstrap::FindUser {
            email: email.clone(),
        })
        .await;
    db.shutdown();
    let user = user
        .map_err(|error| format!("cannot look up {email}: {error}"))?
        .filter(|user| user.is_active)
        .ok_or_else(|| {
            format!("no active user {email}: create one with POST /users (as the platform admin)")
        })?;
    let token = keys?.issue_for(
        &user.email,
        user.id.as_deref(),
        user.is_admin,
        Duration::from_secs(exp_minutes * 60),
    )?;
    println!("{token}");
    Ok(())
}
