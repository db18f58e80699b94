//! `mfa-local`: every route of the MFA service on one port, for development and tests.
//!
//! Requests are turned into the API Gateway HTTP API (v2) events a deployment would deliver
//! (with the JWT authorizer's claims, or the IAM caller for admin routes) and handed to the very
//! same handler functions the Lambdas run. See `../shared/api-contract.md`, "The local server".

mod event;
mod server;
mod token;
mod web;

use clap::{Parser, Subcommand, ValueEnum};

/// The MFA service on one local port.
#[derive(Parser, Debug)]
#[command(name = "mfa-local", version, about)]
struct Cli {
    /// The port to listen on (127.0.0.1 only).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Where state and messages go: `memory` (in-process store, console outbox) or `aws`
    /// (DynamoDB, SNS, SES v2, Secrets Manager through the standard AWS environment).
    #[arg(long, value_enum, default_value_t = Backend::Memory)]
    backend: Backend,
    /// With `--backend aws`: first create whatever is missing (table with TTL, secret, sender).
    #[arg(long)]
    bootstrap: bool,
    /// Log lines as `text` (for people) or `json` (one object per line, with the request id
    /// and application id of the request span, as the Lambda functions log).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "MFA_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Memory,
    Aws,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Prints a JWT signed HS256 with `MFA_LOCAL_JWT_SECRET` (default `local-dev-secret`).
    Token {
        /// The `sub` claim: the user id (or, for admin tokens, the actor).
        #[arg(long)]
        user: String,
        /// The `app_id` claim: the application (tenant) id. Needed for user routes.
        #[arg(long)]
        app: Option<String>,
        /// The `scope` claim, e.g. `mfa:admin` or `mfa:operator` (space-separated).
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Prints the argon2id PHC string of a password (read from standard input), for
    /// provisioning test users: `echo -n 'pw' | mfa-local hash-password`.
    HashPassword,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let secret = token::jwt_secret();
    if let Some(Command::HashPassword) = cli.command {
        return match token::hash_password_from_stdin() {
            Ok(phc) => {
                println!("{phc}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mfa-local: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Token {
        user,
        app,
        scope,
        ttl,
    }) = cli.command
    {
        return match token::issue(&secret, &user, app.as_deref(), scope.as_deref(), ttl) {
            Ok(t) => {
                println!("{t}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mfa-local: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        // Logs to stderr; stdout carries the console outbox and the "listening" line.
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let opts = server::Options {
        port: cli.port,
        aws: cli.backend == Backend::Aws,
        bootstrap: cli.bootstrap,
        jwt_secret: secret,
    };
    match server::run(opts).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfa-local: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
