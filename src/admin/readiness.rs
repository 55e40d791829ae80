//! Readiness by latches: each of sidewatch's own components holds a latch
//! until it has started; `/readyz` answers ready once every latch is
//! released. The app's and its dependencies' health never enter into it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The set of components sidewatch is still waiting for.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    pending: Arc<Mutex<BTreeSet<String>>>,
}

/// Held by a component until it has started; [`Latch::release`] marks it ready.
#[derive(Debug)]
#[must_use = "a latch that is dropped without release keeps sidewatch unready"]
pub struct Latch {
    name: String,
    readiness: Readiness,
}

impl Readiness {
    /// Adds a component that must start before sidewatch is ready.
    pub fn latch(&self, name: impl Into<String>) -> Latch {
        let name = name.into();
        self.lock().insert(name.clone());
        Latch {
            name,
            readiness: self.clone(),
        }
    }

    /// Whether every component has started.
    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    /// The components not started yet.
    pub fn pending(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Latch {
    /// Marks the component as started.
    pub fn release(self) {
        self.readiness.lock().remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_latch_is_released() {
        let readiness = Readiness::default();
        let admin = readiness.latch("admin");
        let collectors = readiness.latch("collectors");
        assert!(!readiness.is_ready());
        admin.release();
        assert_eq!(readiness.pending(), vec!["collectors"]);
        collectors.release();
        assert!(readiness.is_ready());
    }
}
