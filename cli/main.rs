//! `a2a`: the A2A command-line tool. Thin: parse, run, turn the outcome into an exit code.

#![warn(missing_docs)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `a2a status | head` would panic on the closed pipe. A
    // Unix tool ends quietly there instead.
    // SAFETY: at the start of main, before any thread; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = a2a_cli::Cli::parse();
    a2a_cli::init_logging(cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("a2a: error: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    // The command runs as a task on a worker thread, beside the database connections'
    // tasks. Run by `block_on` on the main thread, it was woken across threads for every
    // message a connection received: in a copy, 320,000 futex calls and a fifth of A2A's
    // CPU (bench/dbmove.md, fourth round).
    let outcome = runtime.block_on(async { tokio::spawn(a2a_cli::run(cli)).await });
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // A panic stays a panic, as if the command had run on this thread.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => {
                eprintln!("a2a: error: the command stopped: {e}");
                return ExitCode::from(3);
            }
        },
    };
    match outcome {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("a2a: error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("  hint: {hint}");
            }
            e.exit_code().into()
        }
    }
}
