//! Sources: where events come from. Each implements [`Source`]; its `run`
//! owns its loop, sends batches into a bounded channel (a full channel holds
//! it back: a tailer simply stops reading) and stops reading when told.
//!
//! Shutdown has two steps: `stop` (stop intake; in-flight events keep flowing
//! and acknowledgements keep arriving, checkpoints are written) and `abort`
//! (the drain took too long: write what is known and return).

pub mod file;
pub mod http;
pub mod stdin;
pub mod tcp;

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

use super::Event;

/// What a running source is given.
#[derive(Debug)]
pub struct SourceContext {
    /// Where batches go. Dropping it (returning) tells the stages this source is done.
    pub out: Sender<Vec<Event>>,
    /// Cancelled when intake must stop.
    pub stop: CancellationToken,
    /// Cancelled when the drain is over: stop waiting for acknowledgements.
    pub abort: CancellationToken,
}

/// One kind of source (file tail, stdin; TCP/HTTP intake plug in the same way).
pub trait Source: Send + 'static {
    /// Runs until the input ends or `ctx.stop`, then drains (see the module doc).
    fn run(self, ctx: SourceContext) -> impl Future<Output = ()> + Send;
}

/// A built source, ready to be started: generic sources become one type here.
pub type Launch = Box<dyn FnOnce(SourceContext) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Wraps a source so the pipeline can start it without knowing its type.
pub fn launch<S: Source>(source: S) -> Launch {
    Box::new(move |ctx| Box::pin(source.run(ctx)))
}
