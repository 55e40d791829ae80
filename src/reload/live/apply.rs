//! Applying a new configuration to the running components.

use std::collections::BTreeSet;

use prometheus_client::registry::Registry;

use super::{part, statsd_taken, BuiltCollectors, Live};
use crate::app::RunError;
use crate::config::Config;
use crate::proxy::{AccessLog, ProxyHandle, ProxyMetrics};
use crate::telemetry::route::RouteNormalizer;

impl Live {
    /// Applies `new` (already validated, no restart-only change): rebuilds
    /// the components whose sections are in `changed` and returns what was
    /// rebuilt. Anything that can fail is built before the running
    /// component is stopped, except the pipeline's listeners and checkpoint
    /// reads, which need the old pipeline gone first; if that build fails
    /// the old configuration's pipeline is started again.
    pub async fn apply(
        &mut self,
        old: &Config,
        new: &Config,
        changed: &BTreeSet<String>,
    ) -> Result<Vec<&'static str>, RunError> {
        let has = |s: &str| changed.contains(s);
        let mut rebuilt = Vec::new();
        let collectors = ["health", "postgres", "redis", "pools"]
            .iter()
            .any(|s| has(s))
            .then(|| BuiltCollectors::build(new, &self.ctx.pod, &self.families))
            .transpose()?;
        // Rules alone are swapped into the running pipeline; anything else
        // in `[logs]` (or the access log turning on or off) rebuilds it.
        let rules_changed = has("log_metrics") || has("routes");
        let pipeline_changed = has("logs")
            || old.proxy_access_log() != new.proxy_access_log()
            || (rules_changed && self.rules_tx.is_none());
        let rules = if pipeline_changed || rules_changed {
            Some(self.build_rules(new)?)
        } else {
            None
        };
        let statsd = match &self.statsd {
            Some((handle, metrics)) if has("statsd") || statsd_taken(old) != statsd_taken(new) => {
                let (handle, metrics) = (handle.clone(), metrics.clone());
                let (intake, registry) = self.build_statsd_intake(new, Some(metrics))?;
                Some((handle, intake, registry))
            }
            _ => None,
        };
        let proxy_changed = has("proxy") || has("routes");
        let mut proxy = match self.proxy.clone() {
            Some(handle) if proxy_changed || pipeline_changed => {
                let routes =
                    RouteNormalizer::new(&new.routes.templates).map_err(|e| RunError::Build {
                        key: "routes.templates".into(),
                        message: e.to_string(),
                    })?;
                let mut metrics = handle.metrics();
                if old.proxy.effective_duration_buckets() != new.proxy.effective_duration_buckets()
                {
                    let overflow = self.overflow();
                    metrics = metrics.with_duration_buckets(
                        &overflow,
                        new.proxy.max_series,
                        &new.proxy.effective_duration_buckets(),
                    );
                }
                Some((handle, routes, metrics))
            }
            _ => None,
        };

        if let Some((handle, intake, registry)) = statsd {
            if handle.swap(intake).await {
                self.ctx.registries.set(part::STATSD, registry);
                rebuilt.push("statsd");
            }
        }
        if let Some(built) = collectors {
            if let Some(old) = self.collectors.take() {
                old.stop().await;
            }
            self.spawn_collectors(built);
            rebuilt.push("collectors");
        }
        let rules = match rules {
            Some((rules, registry)) if !pipeline_changed => {
                self.install_rules(rules, registry);
                if let Some(tx) = &self.rules_tx {
                    tx.send_replace(self.rules.clone());
                }
                rebuilt.push("log_rules");
                None
            }
            other => other,
        };
        if let Some((rules, registry)) = rules {
            // The proxy writes into the new access-log queue from now on;
            // the old pipeline drains what is queued in the old one.
            let (access, extra) = self.access_log(new);
            if let Some((handle, routes, metrics)) = proxy.take() {
                self.swap_proxy(&handle, new, routes, metrics, access.clone())?;
                if proxy_changed {
                    rebuilt.push("proxy");
                }
            }
            if let Some(old) = self.pipeline.take() {
                self.rules_tx = None;
                old.stop().await;
            }
            if rules_changed {
                rebuilt.push("log_rules");
            }
            self.install_rules(rules, registry);
            match self.build_pipeline(new, (access, extra)) {
                Ok(pipeline) => {
                    if let Some(pipeline) = pipeline {
                        self.spawn_pipeline(pipeline);
                    }
                    rebuilt.push("log_pipeline");
                }
                Err(error) => {
                    tracing::error!(%error, "reload: cannot build the new log pipeline; starting the previous one again");
                    let (access, extra) = self.access_log(old);
                    if let Ok(Some(pipeline)) = self.build_pipeline(old, (access.clone(), extra)) {
                        self.spawn_pipeline(pipeline);
                    }
                    if let Some(handle) = &self.proxy {
                        handle.set_access(access);
                    }
                    return Err(error);
                }
            }
        }
        if let Some((handle, routes, metrics)) = proxy {
            self.swap_proxy(&handle, new, routes, metrics, self.access.clone())?;
            rebuilt.push("proxy");
        }
        Ok(rebuilt)
    }
}

impl Live {
    fn swap_proxy(
        &self,
        handle: &ProxyHandle,
        new: &Config,
        routes: RouteNormalizer,
        metrics: ProxyMetrics,
        access: Option<AccessLog>,
    ) -> Result<(), RunError> {
        let mut registry = Registry::default();
        metrics.register_on(&mut registry);
        handle
            .swap(&new.proxy, routes, metrics, access)
            .map_err(|e| RunError::Build {
                key: "proxy".into(),
                message: e.to_string(),
            })?;
        self.ctx.registries.set(part::PROXY, registry);
        Ok(())
    }
}
