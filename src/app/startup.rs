//! Process plumbing shared by the `heapster` and `eventer` binaries: exit messages, logging and
//! the TLS provider, the runtime, and SIGTERM/SIGINT.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::config::LogFormat;

/// Prints a parse outcome's message (stdout for 0, stderr otherwise) and returns its code.
pub fn exit_with(code: i32, message: &str) -> ExitCode {
    let nl = if message.ends_with('\n') { "" } else { "\n" };
    if code == 0 {
        print!("{message}{nl}");
    } else {
        eprint!("{message}{nl}");
    }
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// Logging to stderr, and exactly one rustls crypto provider (ring) for every TLS client and
/// server in the process (kube, reqwest, the servers).
pub fn init(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: not in files, `kubectl logs` or the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
}

/// Raises the soft limit on open files to the hard limit, as Go programs (Heapster among them)
/// do at start: kept-alive kubelet connections take a descriptor per node, and container
/// runtimes and systemd often start processes with a soft limit of 1,024.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some() && limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!("raising the open files limit: {e}");
        }
    }
}

/// The multi-threaded runtime, or a message saying why it could not start.
///
/// Blocking threads (processing and store ingest, once per tick) are kept for an hour instead
/// of tokio's 10 s: at resolutions above 10 s every tick otherwise ran on a fresh thread, whose
/// allocator heap was abandoned when it exited, scattering long-lived store memory over
/// abandoned segments (slow RSS creep).
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(3600))
        .build()
        .map_err(|e| {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("signal received, shutting down");
        token.cancel();
    });
}
