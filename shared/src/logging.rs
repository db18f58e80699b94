//! A Lambda function's log subscriber: what `lambda_http::tracing::init_default_subscriber`
//! sets up (no timestamps or targets; JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`; the level
//! from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `info`), without its `EnvFilter`: that
//! filter links a regex engine (`matchers`, `regex-automata`: ~0.4 MB of each binary) for
//! per-target directives these functions never use. A level is all a function needs.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;

/// The level a directive names, or `info` (per-target directives are not supported here).
pub fn level_from(directive: Option<&str>) -> LevelFilter {
    directive
        .and_then(|d| LevelFilter::from_str(d.trim()).ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Installs the subscriber for this process (once, at cold start).
pub fn init_lambda() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_max_level(level_from(level.as_deref()))
        .with_writer(std::io::stdout);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_is_read_as_lambda_reads_it() {
        assert_eq!(level_from(Some("debug")), LevelFilter::DEBUG);
        assert_eq!(level_from(Some("WARN")), LevelFilter::WARN);
        assert_eq!(level_from(None), LevelFilter::INFO);
        assert_eq!(level_from(Some("mfa=trace,info")), LevelFilter::INFO);
    }
}
