//! `eventer`: Heapster's eventer. Flags → config → [`EventerApp`]; the only place that exits.

use std::process::ExitCode;

use heapster_rs::app;
use heapster_rs::config::{self, EventerConfig, EventerParsed, LogFormat};
use heapster_rs::events::EventerApp;

fn init_tracing(cfg: &EventerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match config::parse_eventer(std::env::args_os(), &env) {
        EventerParsed::Run(cfg) => cfg,
        EventerParsed::Exit { code, message } => {
            let nl = if message.ends_with('\n') { "" } else { "\n" };
            if code == 0 {
                print!("{message}{nl}");
            } else {
                eprint!("{message}{nl}");
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    init_tracing(&cfg);
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let eventer = match EventerApp::start(&cfg, app::process_env(), None).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        let token = eventer.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received, shutting down");
            token.cancel();
        });
        eventer.wait().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
