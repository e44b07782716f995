//! The end-to-end benchmark harness behind `heapster-bench`: starts a simulated cluster
//! (`heapster-sim`, split over several processes when large), optionally a private InfluxDB or VictoriaMetrics,
//! then the collector or several sharding replicas (and any peer collectors), waits for a
//! number of ticks and measures CPU, memory, descriptors, tick and scrape times.
//!
//! Processes are separate so that `/proc` numbers belong to the collector alone. Every child is
//! stopped when the harness finishes or fails.

pub mod child;
pub mod influxd;
pub mod outage;
pub mod procfs;
pub mod prom;
pub mod report;
pub mod run;
pub mod simproc;
pub mod soak;

/// Why a benchmark run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A child process could not be started.
    #[error("cannot start {what}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A child did not become ready in time or exited early.
    #[error("{what} not ready: {detail}")]
    NotReady { what: String, detail: String },
    /// The collector produced too few ticks before the deadline.
    #[error("only {got} of {wanted} ticks before the deadline ({detail})")]
    TooFewTicks {
        got: u32,
        wanted: u32,
        detail: String,
    },
    /// Local file or socket trouble.
    #[error(transparent)]
    Io(std::io::Error),
}
