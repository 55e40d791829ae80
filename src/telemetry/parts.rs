//! The registry as a list of per-component parts, each a prometheus-client
//! [`Registry`] of its own, swapped whole on reload.
//!
//! prometheus-client's `Registry` cannot unregister a family, so a reload
//! that changes a component's metrics (new histogram buckets, new log rules)
//! cannot edit the one registry in place. Instead every component registers
//! on its own part; `/metrics` encodes the parts in order, one after the
//! other, followed by a single `# EOF`. A rebuilt component replaces its
//! part under the lock; an unchanged component keeps its part, so its metric
//! handles (and their values) carry on untouched. A rebuilt component that
//! wants continuity for some of its families (the proxy's counters when only
//! its buckets change) registers the *same* handles on its new part: a
//! handle is an `Arc` inside, so clones share the value.

use std::sync::{Arc, RwLock};

use prometheus_client::registry::Registry;

/// One named part.
type Part = (String, Arc<Registry>);

/// The parts, in exposition order. Cheap to clone; clones share the parts.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    parts: Arc<RwLock<Vec<Part>>>,
}

impl Registries {
    /// An empty list of parts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets part `name` to `registry`: replaces it where it is, or appends it.
    pub fn set(&self, name: &str, registry: Registry) {
        let registry = Arc::new(registry);
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        match parts.iter_mut().find(|(n, _)| n == name) {
            Some((_, part)) => *part = registry,
            None => parts.push((name.to_owned(), registry)),
        }
    }

    /// Removes part `name`, if present.
    pub fn remove(&self, name: &str) {
        let mut parts = self.parts.write().unwrap_or_else(|e| e.into_inner());
        parts.retain(|(n, _)| n != name);
    }

    /// Whether part `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.iter().any(|(n, _)| n == name)
    }

    /// The names of the parts, in order.
    pub fn names(&self) -> Vec<String> {
        let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
        parts.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Encodes every part as OpenMetrics text, ending in one `# EOF`.
    pub fn encode_openmetrics(&self, out: &mut String) -> Result<(), std::fmt::Error> {
        // Clone the Arcs so no lock is held while encoding.
        let parts: Vec<Arc<Registry>> = {
            let parts = self.parts.read().unwrap_or_else(|e| e.into_inner());
            parts.iter().map(|(_, r)| r.clone()).collect()
        };
        for part in parts {
            prometheus_client::encoding::text::encode_registry(out, &part)?;
        }
        prometheus_client::encoding::text::encode_eof(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    fn part(name: &str, counter: &Counter) -> Registry {
        let mut registry = Registry::default();
        registry.register(name, "help", counter.clone());
        registry
    }

    fn text(registries: &Registries) -> String {
        let mut out = String::new();
        registries.encode_openmetrics(&mut out).unwrap();
        out
    }

    #[test]
    fn parts_are_encoded_in_order_with_one_eof() {
        let registries = Registries::new();
        let (a, b) = (Counter::<u64>::default(), Counter::<u64>::default());
        registries.set("a", part("first", &a));
        registries.set("b", part("second", &b));
        let out = text(&registries);
        let first = out.find("first_total").unwrap();
        let second = out.find("second_total").unwrap();
        assert!(first < second, "{out}");
        assert_eq!(out.matches("# EOF").count(), 1, "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn replacing_a_part_keeps_its_place_and_other_parts_values() {
        let registries = Registries::new();
        let (a, b) = (Counter::<u64>::default(), Counter::<u64>::default());
        a.inc_by(7);
        registries.set("a", part("kept", &a));
        registries.set("b", part("old", &b));
        registries.set("c", Registry::default());
        let fresh = Counter::<u64>::default();
        registries.set("b", part("new", &fresh));
        let out = text(&registries);
        assert!(out.contains("kept_total 7"), "{out}");
        assert!(!out.contains("old_total"), "{out}");
        assert!(out.contains("new_total 0"), "{out}");
        assert_eq!(registries.names(), ["a", "b", "c"]);
        registries.remove("b");
        assert!(!registries.contains("b"));
    }

    #[test]
    fn the_same_handle_on_a_new_part_continues_its_value() {
        let registries = Registries::new();
        let counter = Counter::<u64>::default();
        counter.inc_by(3);
        registries.set("p", part("requests", &counter));
        registries.set("p", part("requests", &counter));
        counter.inc();
        assert!(text(&registries).contains("requests_total 4"));
    }
}
