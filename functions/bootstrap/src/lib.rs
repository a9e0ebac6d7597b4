//! What every A2A Lambda does before its handler runs, written once: JSON logs for
//! CloudWatch, and configuration read from the environment with errors that name the
//! variable. Runs outside the handler, once per cold start.

/// JSON log lines on stdout, `info` unless `RUST_LOG` says otherwise. Lambda stamps each
/// line with its own time, so ours is left out.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .without_time()
        .init();
}

/// The variable's value; unset and blank are the same: not given.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable's value, or an error naming it.
pub fn required(name: &str) -> Result<String, String> {
    var(name).ok_or_else(|| format!("{name} is not set"))
}

/// The variable as a whole number, `default` when unset, or an error naming it.
pub fn number(name: &str, default: usize) -> Result<usize, String> {
    match var(name) {
        Some(n) => n
            .trim()
            .parse()
            .map_err(|_| format!("{name}={n:?}: expected a whole number")),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_missing_variables_are_named() {
        // A name no other test or process sets.
        let name = "A2A_FN_BOOTSTRAP_TEST_UNSET";
        assert_eq!(var(name), None);
        assert_eq!(required(name).unwrap_err(), format!("{name} is not set"));
        assert_eq!(number(name, 25), Ok(25));
    }
}
