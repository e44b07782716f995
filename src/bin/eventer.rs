//! `eventer`: Heapster's eventer. Flags → config → [`EventerApp`]; the only place that exits.

use std::process::ExitCode;

use heapster_rs::app::{self, startup};
use heapster_rs::config::{self, EventerParsed};
use heapster_rs::events::EventerApp;

fn main() -> ExitCode {
    let env = |k: &str| std::env::var(k).ok();
    let cfg = match config::parse_eventer(std::env::args_os(), &env) {
        EventerParsed::Run(cfg) => cfg,
        EventerParsed::Exit { code, message } => return startup::exit_with(code, &message),
    };
    startup::init(cfg.log_format, &cfg.log_level);
    let runtime = match startup::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let eventer = match EventerApp::start(&cfg, app::process_env(), None).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot start");
                return ExitCode::FAILURE;
            }
        };
        startup::cancel_on_signal(eventer.shutdown_token());
        eventer.wait().await;
        ExitCode::SUCCESS
    })
}
