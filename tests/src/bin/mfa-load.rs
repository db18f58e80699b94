//! `mfa-load`: the load test as a standalone command (`tests/load.sh` builds and runs it).
//!
//! ```text
//! mfa-load [--backend memory|aws] [--users N] [--duration SECONDS] [--report NAME]
//! ```
//!
//! It starts `mfa-local` itself (`MFA_LOCAL_BIN`, or a debug build), on the memory backend or
//! against the moto server at `MFA_TEST_MOTO_URL`, runs the users for the duration, prints the
//! report, writes it to `target/load-report-NAME.txt`, and exits 1 if the run found a problem.

use std::process::ExitCode;
use std::time::Duration;

use mfa_tests::load::{self, Backend, Options};

const USAGE: &str =
    "usage: mfa-load [--backend memory|aws] [--users N] [--duration SECONDS] [--report NAME]
  --backend   memory (default): mfa-local's in-process store; aws: mfa-local --backend aws
              against the moto server at MFA_TEST_MOTO_URL
  --users     simulated users running at once (default 16)
  --duration  seconds during which iterations start (default 10)
  --report    the report goes to target/load-report-NAME.txt (default: standalone-BACKEND)
  MFA_LOCAL_BIN names the mfa-local binary to start (default: a debug build of it)";

fn parse(args: &[String]) -> Result<(Options, Option<String>), String> {
    let mut o = Options {
        backend: Backend::Memory,
        users: 16,
        duration: Duration::from_secs(10),
    };
    let mut report = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        match flag.as_str() {
            "--backend" => {
                o.backend = match value {
                    "memory" => Backend::Memory,
                    "aws" | "moto" => Backend::Moto,
                    _ => return Err(format!("unknown backend {value:?}")),
                }
            }
            "--users" => {
                o.users = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--users takes a positive whole number")?;
            }
            "--duration" => {
                let secs: f64 = value
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or("--duration takes a positive number of seconds")?;
                o.duration = Duration::from_secs_f64(secs);
            }
            "--report" => report = Some(value.to_owned()),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok((o, report))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (o, report) = match parse(&args) {
        Ok(x) => x,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mfa-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if o.backend == Backend::Moto && std::env::var_os("MFA_TEST_MOTO_URL").is_none() {
        eprintln!("mfa-load: --backend aws needs MFA_TEST_MOTO_URL (tests/load.sh starts moto)");
        return ExitCode::from(2);
    }
    let r = load::run(&o).await;
    let name = report.unwrap_or_else(|| format!("standalone-{}", o.backend.name()));
    r.save(&name);
    if r.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
