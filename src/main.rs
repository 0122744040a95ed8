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
    /// Ask the gateway running with these settings whether it is up (`/health`), or ready to
    /// serve (`--ready`: `/ready`, the database answers); exits 0 if so (a container's health
    /// check: the image needs no other program).
    Health {
        /// Ask `/ready` instead of `/health`.
        #[arg(long)]
        ready: bool,
    },
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
    if let Some(Command::Health { ready }) = cli.command {
        return health(&settings, ready);
    }
    mcpgate::logs::install(&settings.log);
    let outcome = actix_web::rt::System::new().block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Token { email, exp_minutes } => token(settings, email, exp_minutes).await,
            Command::Settings | Command::Health { .. } => Ok(()),
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

/// `mcpgate health`: one HTTP/1.0 request to this process's own port (on loopback when it
/// listens on every address), at most three seconds; success is a 200. The address is the
/// gateway's own `HOST`/`PORT`, never one a user names, so it is not an egress (the policy is
/// for upstreams and REST tools).
fn health(settings: &Settings, ready: bool) -> ExitCode {
    use std::io::{Read, Write};
    let host = if settings.host.is_unspecified() {
        match settings.host {
            std::net::IpAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::IpAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        }
    } else {
        settings.host
    };
    let address = std::net::SocketAddr::new(host, settings.port);
    let path = if ready { "/ready" } else { "/health" };
    let limit = std::time::Duration::from_secs(3);
    let asked = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&address, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut answer = String::new();
        stream.take(4096).read_to_string(&mut answer)?;
        Ok(answer)
    })();
    match asked {
        Ok(answer) if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") => {
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            let status = answer.lines().next().unwrap_or_default();
            eprintln!("mcpgate: {address}{path} answered {status:?}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("mcpgate: cannot ask {address}{path}: {error}");
            ExitCode::FAILURE
        }
    }
}
