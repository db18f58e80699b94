//! `mfa-bench`: cold start, first request, warm latency and peak memory of each function's
//! release binary beside a Python 3.11 + boto3 peer, both run by a local Lambda Runtime API
//! emulator against AWS services on moto; then a cost model per 1000 enrollments.
//!
//! `bench/run.sh` prepares everything (venv, release builds, moto, the table's items, the TLS
//! terminator) and calls this binary once per mode. No test asserts a time.

mod cost;
mod emulator;
mod events;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

use emulator::Emulator;
use events::{Auth, event};

#[derive(Parser, Debug)]
#[command(
    name = "mfa-bench",
    about = "Lambda cold start and latency benchmark (bench/run.sh)"
)]
struct Args {
    /// A label for this run ("unthrottled", "tls+cpu-share").
    #[arg(long, default_value = "unthrottled")]
    mode: String,
    /// The functions' release binaries.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The "who" of `--bin-dir`'s binaries in the table.
    #[arg(long, default_value = "ours")]
    label: String,
    /// A second build of the functions (e.g. another HTTP client), run in the same sandboxes'
    /// turn: ours, this one, the peer, ours, this one, the peer...
    #[arg(long)]
    compare_bin_dir: Option<PathBuf>,
    /// The "who" of `--compare-bin-dir`'s binaries in the table.
    #[arg(long, default_value = "alt")]
    compare_label: String,
    /// The bench venv's Python (boto3 installed), for the peer.
    #[arg(long, default_value = "target/bench-venv/bin/python")]
    python: PathBuf,
    /// The peer's folder (bootstrap.py, status.py).
    #[arg(long, default_value = "bench/peer")]
    peer_dir: PathBuf,
    /// `AWS_ENDPOINT_URL` for every function process (moto, or the TLS terminator).
    #[arg(long)]
    endpoint: String,
    /// A CA bundle (PEM) to trust: set as SSL_CERT_FILE, AWS_CA_BUNDLE and REQUESTS_CA_BUNDLE.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Run each process at its configured memory's CPU share (cgroup v1 CPU quota).
    #[arg(long)]
    cpu_share: bool,
    /// Cold starts per function (and as many for the peer, alternating).
    #[arg(long, default_value_t = 3)]
    cold: usize,
    /// Warm invocations after each cold start's first one.
    #[arg(long, default_value_t = 200)]
    warm: usize,
    /// Warm invocations of the password step (each creates an enrollment and runs argon2).
    #[arg(long, default_value_t = 20)]
    warm_start: usize,
    /// The seeded application and user, and the user's password.
    #[arg(long, default_value = "bench-app")]
    app: String,
    #[arg(long, default_value = "bench-user")]
    user: String,
    #[arg(long, default_value = "bench password 1")]
    password: String,
    #[arg(long, default_value = "mfa-local")]
    table: String,
    #[arg(long, default_value = "mfa-local/code-hmac-key")]
    secret_id: String,
    #[arg(long, default_value = "mfa-local/assertion-signing-key")]
    signing_secret_id: String,
    /// template.yaml, for each function's MemorySize.
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Child processes' output goes here, one file per cold start.
    #[arg(long, default_value = "target/bench-logs")]
    log_dir: PathBuf,
    /// Only these functions (comma-separated); all by default.
    #[arg(long)]
    only: Option<String>,
}

/// One benchmarked route of one function.
struct Case {
    /// The row's name.
    label: &'static str,
    /// The release binary (and the Lambda function name).
    function: &'static str,
    auth: Auth,
    method: &'static str,
    path: String,
    body: Option<Value>,
    expect: u16,
    /// Warm invocations per cold start (None: `--warm`).
    warm: Option<usize>,
}

fn cases(a: &Args) -> Vec<Case> {
    // An enrollment id of the right shape that exists nowhere: one GetItem, then 404.
    let unknown = format!("enr_{}", "0".repeat(32));
    vec![
        Case {
            label: "policy-config GET policy",
            function: "policy-config",
            auth: Auth::Admin,
            method: "GET",
            path: format!("/v1/admin/applications/{}/mfa-policy", a.app),
            body: None,
            expect: 200,
            warm: None,
        },
        Case {
            label: "enrollment-start GET status",
            function: "enrollment-start",
            auth: Auth::User,
            method: "GET",
            path: "/v1/mfa/status".into(),
            body: None,
            expect: 200,
            warm: None,
        },
        Case {
            label: "enrollment-start POST start",
            function: "enrollment-start",
            auth: Auth::User,
            method: "POST",
            path: "/v1/mfa/enrollments".into(),
            body: Some(json!({ "password": a.password })),
            expect: 201,
            warm: Some(a.warm_start),
        },
        Case {
            label: "phone-submit unknown id",
            function: "phone-submit",
            auth: Auth::User,
            method: "POST",
            path: format!("/v1/mfa/enrollments/{unknown}/phone"),
            body: Some(json!({ "phone_number": "+14155550123" })),
            expect: 404,
            warm: None,
        },
        Case {
            label: "code-verify unknown id",
            function: "code-verify",
            auth: Auth::User,
            method: "POST",
            path: format!("/v1/mfa/enrollments/{unknown}/code"),
            body: Some(json!({ "code": "123456" })),
            expect: 404,
            warm: None,
        },
        Case {
            label: "phone-edits GET phones",
            function: "phone-edits",
            auth: Auth::User,
            method: "GET",
            path: "/v1/mfa/phones".into(),
            body: None,
            expect: 200,
            warm: None,
        },
        Case {
            label: "challenge GET jwks.json",
            function: "challenge",
            auth: Auth::Public,
            method: "GET",
            path: "/v1/mfa/jwks.json".into(),
            body: None,
            expect: 200,
            warm: None,
        },
    ]
}

/// Each function's `MemorySize` from template.yaml (the resource's own, else the Globals').
fn memory_sizes(template: &Path) -> Result<BTreeMap<String, u32>, String> {
    let text = std::fs::read_to_string(template)
        .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
    let mut global = 128;
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("FunctionName: !Sub ${AWS::StackName}-") {
            current = Some(name.trim().to_owned());
        } else if let Some(m) = t.strip_prefix("MemorySize:") {
            let m: u32 = m.trim().parse().unwrap_or(128);
            match current.take() {
                Some(f) => {
                    out.insert(f, m);
                }
                None if out.is_empty() => global = m,
                None => {}
            }
        } else if t.starts_with("Type: AWS::Serverless::Function") {
            current = None;
        }
    }
    for f in FUNCTIONS {
        out.entry((*f).to_owned()).or_insert(global);
    }
    Ok(out)
}

const FUNCTIONS: &[&str] = &[
    "policy-config",
    "enrollment-start",
    "phone-submit",
    "code-verify",
    "phone-edits",
    "challenge",
];

/// Lambda gives one full vCPU at 1769 MB, and CPU in proportion below.
const MB_PER_VCPU: u64 = 1769;
const CFS_PERIOD_US: u64 = 100_000;

/// A cgroup v1 CPU group holding `memory`'s share of one vCPU; returns its `cgroup.procs`.
fn cpu_group(memory: u32) -> Result<PathBuf, String> {
    let dir = PathBuf::from(format!("/sys/fs/cgroup/cpu/mfa-bench-{memory}"));
    let quota = u64::from(memory) * CFS_PERIOD_US / MB_PER_VCPU;
    let write = |file: &str, value: String| {
        std::fs::write(dir.join(file), value)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write("cpu.cfs_period_us", CFS_PERIOD_US.to_string())?;
    write("cpu.cfs_quota_us", quota.to_string())?;
    Ok(dir.join("cgroup.procs"))
}

/// What to start for one sandbox.
struct Sandbox<'a> {
    name: &'a str,
    memory: u32,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// One cold start's measurements.
#[derive(Debug, Clone)]
struct Sample {
    init: Duration,
    first: Duration,
    warm: Vec<Duration>,
    rss_kb: u64,
}

fn vm_hwm_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn status_of(body: &[u8]) -> Option<u16> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("statusCode")?
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_sandbox(
    a: &Args,
    sb: &Sandbox<'_>,
    ev: &[u8],
    expect: u16,
    warm: usize,
    log: &Path,
) -> Result<Sample, String> {
    let mut emu = Emulator::start(sb.name)
        .await
        .map_err(|e| format!("emulator: {e}"))?;
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        ("AWS_LAMBDA_RUNTIME_API".into(), emu.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), sb.name.into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            sb.memory.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", sb.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME".into(),
            "2026/01/01/[$LATEST]bench".into(),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ("AWS_SESSION_TOKEN".into(), "test".into()),
        ("AWS_ENDPOINT_URL".into(), a.endpoint.clone()),
        ("MFA_TABLE_NAME".into(), a.table.clone()),
        ("MFA_SECRET_ID".into(), a.secret_id.clone()),
        ("LAMBDA_TASK_ROOT".into(), "/var/task".into()),
    ];
    // Secrets Manager (read during init) on another authority than DynamoDB, as on AWS: the
    // first request then opens its own connection (and TLS session) instead of reusing the
    // one init opened, which a single local endpoint would otherwise allow.
    if a.endpoint.contains("127.0.0.1") {
        env.push((
            "AWS_ENDPOINT_URL_SECRETS_MANAGER".into(),
            a.endpoint.replace("127.0.0.1", "localhost"),
        ));
    }
    if let Some(ca) = &a.ca_file {
        let ca = ca.display().to_string();
        for var in ["SSL_CERT_FILE", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"] {
            env.push((var.into(), ca.clone()));
        }
    }
    env.extend(sb.env.iter().cloned());

    let (program, args) = if a.cpu_share {
        // The shell joins the group first, then becomes the function: init is throttled too.
        let procs = cpu_group(sb.memory)?;
        let mut args = vec![
            "-c".to_owned(),
            r#"echo $$ > "$0" && exec "$@""#.to_owned(),
            procs.display().to_string(),
            sb.program.display().to_string(),
        ];
        args.extend(sb.args.iter().cloned());
        (PathBuf::from("/bin/sh"), args)
    } else {
        (sb.program.clone(), sb.args.clone())
    };
    let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let spawned = Instant::now();
    let child = Command::new(&program)
        .args(&args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let mut child = Killed(child);
    let pid = child.0.id();

    // Init: until the runtime first asks for an event.
    let init_deadline = spawned + Duration::from_secs(60);
    let polled = loop {
        if let Some(t) = emu.first_poll() {
            break t;
        }
        if let Some(e) = emu.init_error() {
            return Err(format!("init error: {e} (log: {})", log.display()));
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!(
                "exited during init ({status}); log: {}",
                log.display()
            ));
        }
        if Instant::now() > init_deadline {
            return Err(format!("no /next poll within 60 s; log: {}", log.display()));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let init = polled.saturating_duration_since(spawned);

    let timeout = Duration::from_secs(30);
    let one = async |emu: &mut Emulator| -> Result<Duration, String> {
        let o = emu.invoke(ev.to_vec(), timeout).await?;
        let got = status_of(&o.body);
        if !o.ok || got != Some(expect) {
            return Err(format!(
                "expected {expect}, got {}: {} (log: {})",
                got.map_or("an error".to_owned(), |s| s.to_string()),
                String::from_utf8_lossy(&o.body),
                log.display()
            ));
        }
        Ok(o.answered.saturating_duration_since(o.handed_out))
    };
    let first = one(&mut emu).await?;
    let mut warm_times = Vec::with_capacity(warm);
    for _ in 0..warm {
        warm_times.push(one(&mut emu).await?);
    }
    let rss_kb = vm_hwm_kb(pid);
    drop(child);
    Ok(Sample {
        init,
        first,
        warm: warm_times,
        rss_kb,
    })
}

/// Everything measured for one side (ours or the peer) of one case.
#[derive(Debug, Clone, Default)]
struct Side {
    samples: Vec<Sample>,
    error: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The nearest-rank percentile.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// The figures of one side.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub init: f64,
    pub first: f64,
    pub p50: f64,
    pub p99: f64,
    pub rss_mb: f64,
}

impl Side {
    fn figures(&self) -> Option<Figures> {
        if self.samples.is_empty() {
            return None;
        }
        let warm: Vec<f64> = self
            .samples
            .iter()
            .flat_map(|s| s.warm.iter().copied().map(ms))
            .collect();
        Some(Figures {
            init: median(self.samples.iter().map(|s| ms(s.init)).collect()),
            first: median(self.samples.iter().map(|s| ms(s.first)).collect()),
            p50: percentile(&warm, 0.50),
            p99: percentile(&warm, 0.99),
            rss_mb: self.samples.iter().map(|s| s.rss_kb).max().unwrap_or(0) as f64 / 1024.0,
        })
    }

    fn ranges(&self) -> String {
        let list = |f: &dyn Fn(&Sample) -> f64| {
            self.samples
                .iter()
                .map(|s| format!("{:.1}", f(s)))
                .collect::<Vec<_>>()
                .join("/")
        };
        format!(
            "init {} ms, first {} ms",
            list(&|s| ms(s.init)),
            list(&|s| ms(s.first))
        )
    }
}

fn peer_sandbox<'a>(a: &Args, name: &'a str, memory: u32) -> Sandbox<'a> {
    Sandbox {
        name,
        memory,
        program: a.python.clone(),
        args: vec![a.peer_dir.join("bootstrap.py").display().to_string()],
        env: vec![
            ("PYTHONPATH".into(), a.peer_dir.display().to_string()),
            ("_HANDLER".into(), "status.handler".into()),
            ("AWS_EXECUTION_ENV".into(), "AWS_Lambda_python3.11".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ],
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    match run(&a).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mfa-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: &Args) -> Result<(), String> {
    let memory = memory_sizes(&a.template)?;
    std::fs::create_dir_all(&a.log_dir).map_err(|e| format!("{}: {e}", a.log_dir.display()))?;
    let only: Option<Vec<&str>> = a.only.as_deref().map(|s| s.split(',').collect());
    let peer_event = event(Auth::User, "GET", "/v1/mfa/status", None, &a.app, &a.user);
    let mode_tag: String = a
        .mode
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();

    let mut results: Vec<(&Case, u32, Side, Side, Option<Side>)> = Vec::new();
    let all = cases(a);
    for case in &all {
        if let Some(only) = &only
            && !only.contains(&case.function)
        {
            continue;
        }
        let mem = memory.get(case.function).copied().unwrap_or(128);
        let ev = event(
            case.auth,
            case.method,
            &case.path,
            case.body.clone(),
            &a.app,
            &a.user,
        );
        let warm = case.warm.unwrap_or(a.warm);
        let ours_sb = Sandbox {
            name: case.function,
            memory: mem,
            program: a.bin_dir.join(case.function),
            args: vec![],
            env: if case.function == "challenge" {
                vec![("MFA_SIGNING_SECRET_ID".into(), a.signing_secret_id.clone())]
            } else {
                vec![]
            },
        };
        let alt_sb = a.compare_bin_dir.as_ref().map(|dir| Sandbox {
            name: ours_sb.name,
            memory: ours_sb.memory,
            program: dir.join(case.function),
            args: ours_sb.args.clone(),
            env: ours_sb.env.clone(),
        });
        let peer_sb = peer_sandbox(a, "python-status-peer", mem);
        let (mut ours, mut peer) = (Side::default(), Side::default());
        let mut alt = alt_sb.as_ref().map(|_| Side::default());
        eprintln!("[{}] {} at {mem} MB", a.mode, case.label);
        for i in 0..a.cold {
            // Alternate: ours, (the other build,) peer, ours...
            let mine = [(&ours_sb, &mut ours, a.label.as_str())].into_iter().chain(
                alt_sb
                    .iter()
                    .zip(alt.iter_mut())
                    .map(|(sb, side)| (sb, side, a.compare_label.as_str())),
            );
            for (sb, side, who) in mine {
                if side.error.is_some() {
                    continue;
                }
                let log = a.log_dir.join(format!(
                    "{mode_tag}-{who}-{}-{i}.log",
                    case.label.replace(' ', "_")
                ));
                match run_sandbox(a, sb, &ev, case.expect, warm, &log).await {
                    Ok(s) => side.samples.push(s),
                    Err(e) => side.error = Some(e),
                }
            }
            if peer.error.is_none() {
                let log = a.log_dir.join(format!(
                    "{mode_tag}-peer-for-{}-{i}.log",
                    case.label.replace(' ', "_")
                ));
                match run_sandbox(a, &peer_sb, &peer_event, 200, warm, &log).await {
                    Ok(s) => peer.samples.push(s),
                    Err(e) => peer.error = Some(e),
                }
            }
        }
        results.push((case, mem, ours, peer, alt));
    }

    let report = table(a, &results);
    print!("{report}");
    // The cost model bills each invocation at its function's configured memory and measured
    // warm p50 (this mode's).
    let mut durations = BTreeMap::new();
    for (case, mem, ours, _, _) in &results {
        if let Some(f) = ours.figures() {
            durations.insert(case.label, (*mem, f.p50));
        }
    }
    print!("{}", cost::model(&a.mode, &durations));
    print!("{}", cost::sign_in_model(&a.mode, &durations));
    // What the texts are billed as: every language's code text, in segments.
    print!(
        "\n== code texts in segments (mfa_shared::messages) ==\n{}",
        cost::segments_table()
    );
    Ok(())
}

fn table(a: &Args, results: &[(&Case, u32, Side, Side, Option<Side>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n== mode: {} (endpoint {}{}), {} cold starts each, {} warm per cold start ==",
        a.mode,
        a.endpoint,
        if a.cpu_share {
            ", CPU = memory/1769 of one vCPU"
        } else {
            ", no CPU limit"
        },
        a.cold,
        a.warm
    );
    let _ = writeln!(
        s,
        "peer = Python 3.11 + boto3 status handler (bench/peer), same memory; medians over cold starts, warm percentiles pooled"
    );
    let _ = writeln!(
        s,
        "{:<30} {:>5} {:<5} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "function / route", "MB", "who", "init ms", "first ms", "p50 ms", "p99 ms", "RSS MB"
    );
    let row = |s: &mut String, label: &str, mem: String, who: &str, f: &Figures| {
        let _ = writeln!(
            s,
            "{:<30} {:>5} {:<5} {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>9.1}",
            label, mem, who, f.init, f.first, f.p50, f.p99, f.rss_mb
        );
    };
    let mut notes = String::new();
    for (case, mem, ours, peer, alt) in results {
        let (fo, fp) = (ours.figures(), peer.figures());
        match &fo {
            Some(f) => row(&mut s, case.label, mem.to_string(), &a.label, f),
            None => {
                let _ = writeln!(s, "{:<30} {:>5} {:<5} FAILED", case.label, mem, a.label);
            }
        }
        match alt.as_ref().map(|alt| (alt, alt.figures())) {
            Some((_, Some(f))) => row(&mut s, "", String::new(), &a.compare_label, &f),
            Some((_, None)) => {
                let _ = writeln!(s, "{:<30} {:>5} {:<5} FAILED", "", "", a.compare_label);
            }
            None => {}
        }
        match &fp {
            Some(f) => row(&mut s, "", String::new(), "peer", f),
            None => {
                let _ = writeln!(s, "{:<30} {:>5} peer  FAILED", "", "");
            }
        }
        let fa = alt.as_ref().and_then(Side::figures);
        let mine = [(a.label.as_str(), fo), (a.compare_label.as_str(), fa)];
        for (who, o) in mine {
            if let (Some(o), Some(p)) = (o, fp) {
                ratios(&mut s, a, case, &format!("p/{who}"), o, p);
            }
        }
        let sides = [
            (a.label.as_str(), Some(ours)),
            (a.compare_label.as_str(), alt.as_ref()),
        ]
        .into_iter()
        .chain([("peer", Some(peer))])
        .filter_map(|(who, side)| side.map(|side| (who, side)));
        for (who, side) in sides {
            let _ = writeln!(notes, "  {} {who}: {}", case.label, side.ranges());
            if let Some(e) = &side.error {
                let _ = writeln!(notes, "  {} {who} FAILED: {e}", case.label);
            }
        }
    }
    let _ = writeln!(s, "per cold start:\n{notes}");
    s
}

/// The peer-to-one-side ratios of a case, and its budgets.
fn ratios(s: &mut String, a: &Args, case: &Case, who: &str, o: Figures, p: Figures) {
    let _ = writeln!(
        s,
        "{:<30} {:>5} {:<5} {:>9.1}x {:>9.1}x {:>8.1}x {:>8.1}x {:>8.1}x",
        "",
        "",
        who,
        p.init / o.init,
        p.first / o.first,
        p.p50 / o.p50,
        p.p99 / o.p99,
        p.rss_mb / o.rss_mb
    );
    let mut budget = Vec::new();
    if !a.cpu_share {
        budget.push(format!(
            "init >= 20x faster: {}",
            if p.init / o.init >= 20.0 {
                "met"
            } else {
                "MISSED"
            }
        ));
    }
    if a.cpu_share && a.ca_file.is_some() {
        budget.push(format!(
            "first <= 1/4 of peer's: {}",
            if o.first * 4.0 <= p.first {
                "met"
            } else {
                "MISSED"
            }
        ));
    }
    if case.function != "enrollment-start" || case.expect != 201 {
        budget.push(format!(
            "RSS <= 1/4 of peer's: {}",
            if o.rss_mb * 4.0 <= p.rss_mb {
                "met"
            } else {
                "MISSED"
            }
        ));
    }
    let _ = writeln!(s, "{:<36} budgets: {}", "", budget.join("; "));
}
