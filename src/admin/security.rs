//! Metrics of the secured listeners: what was refused, and how reloads of
//! certificate and token files went. Label values come from fixed lists
//! (the listener names are chosen in code: `admin`, `actions`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{auth, tls};

/// The reasons of `sidewatch_admin_rejected_total`.
pub const REJECT_REASONS: [&str; 4] = [
    "unauthorized",
    "body_too_large",
    "header_too_large",
    "tls_handshake",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ListenerReason {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FileOutcome {
    listener: &'static str,
    file: &'static str,
    outcome: &'static str,
}

/// `sidewatch_admin_rejected_total` and `sidewatch_admin_file_reloads_total`.
#[derive(Debug, Clone)]
pub struct SecurityMetrics {
    rejected: Family<ListenerReason, Counter>,
    reloads: Family<FileOutcome, Counter>,
}

/// One listener's refusal counters.
#[derive(Debug, Clone)]
pub struct Rejections {
    /// Missing or wrong credentials (`401`).
    pub unauthorized: Counter,
    /// Body over `max_body_bytes` (`413`).
    pub body_too_large: Counter,
    /// Request head over `max_header_bytes` or `max_headers` (`431`).
    pub header_too_large: Counter,
    /// TLS handshakes that failed or timed out.
    pub tls_handshake: Counter,
}

impl SecurityMetrics {
    /// Registers both families.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            rejected: Family::default(),
            reloads: Family::default(),
        };
        registry.register(
            "sidewatch_admin_rejected",
            "Requests and connections an admin listener refused, by listener and reason (unauthorized: 401, body_too_large: 413, header_too_large: 431, tls_handshake)",
            metrics.rejected.clone(),
        );
        registry.register(
            "sidewatch_admin_file_reloads",
            "Changed certificate/key pairs and token files an admin listener read, by listener, file (certificate, token) and outcome (ok, error: the previous one stays in use)",
            metrics.reloads.clone(),
        );
        metrics
    }

    /// Handles registered nowhere (tests).
    pub fn detached() -> Self {
        Self::register(&mut Registry::default())
    }

    /// The refusal counters of `listener`, every reason created (so each
    /// series shows from the start).
    pub fn rejections(&self, listener: &'static str) -> Rejections {
        let get = |reason| {
            self.rejected
                .get_or_create_owned(&ListenerReason { listener, reason })
        };
        Rejections {
            unauthorized: get(REJECT_REASONS[0]),
            body_too_large: get(REJECT_REASONS[1]),
            header_too_large: get(REJECT_REASONS[2]),
            tls_handshake: get(REJECT_REASONS[3]),
        }
    }

    fn reload(&self, listener: &'static str, file: &'static str, outcome: &'static str) -> Counter {
        self.reloads.get_or_create_owned(&FileOutcome {
            listener,
            file,
            outcome,
        })
    }

    /// Certificate reload counters of `listener`.
    pub fn tls_reloads(&self, listener: &'static str) -> tls::ReloadCounters {
        tls::ReloadCounters {
            ok: self.reload(listener, "certificate", "ok"),
            error: self.reload(listener, "certificate", "error"),
        }
    }

    /// Token-file reload counters of `listener`.
    pub fn token_reloads(&self, listener: &'static str) -> auth::ReloadCounters {
        auth::ReloadCounters {
            ok: self.reload(listener, "token", "ok"),
            error: self.reload(listener, "token", "error"),
        }
    }
}
