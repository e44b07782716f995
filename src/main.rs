//! `heapster`: flags → config → app. The only place that exits the process.

use std::process::ExitCode;

use heapster_rs::app::{self, App, startup};
use heapster_rs::config::{self, Parsed, SourceConfig};

/// mimalloc instead of glibc's malloc: the collector makes many small, short-lived allocations
/// on several threads every tick, where glibc's per-thread arenas fragment and keep memory.
/// The `system-allocator` feature leaves it out, for heap profilers that hook malloc.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match config::parse(std::env::args_os(), &env) {
        Parsed::Run(cfg) => cfg,
        Parsed::Exit { code, message } => return startup::exit_with(code, &message),
    };
    startup::init(cfg.log_format, &cfg.log_level);
    startup::raise_open_files_limit();
    if matches!(cfg.source, SourceConfig::Simulated(_)) {
        tracing::warn!(
            "--source is simulated: scraping an in-process simulated cluster, not a real one"
        );
    }
    let runtime = match startup::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = runtime.block_on(async move {
        let app = match App::start(cfg, app::process_env()).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        startup::cancel_on_signal(app.shutdown_token());
        app.wait().await;
        ExitCode::SUCCESS
    });
    // Anything still running once the app stopped (a sink's work on a blocking thread past the
    // shutdown budget) is abandoned rather than waited for: dropping the runtime would wait.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
