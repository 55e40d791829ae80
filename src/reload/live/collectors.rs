//! The interval collectors as one rebuildable group.

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::StatusBoard;
use crate::app::RunError;
use crate::collect::health::{HealthCollector, HealthMetrics};
use crate::collect::pool::{PoolCollector, PoolMetrics};
use crate::collect::postgres::{PostgresCollector, PostgresMetrics};
use crate::collect::redis::{RedisCollector, RedisMetrics};
use crate::collect::scheduler::{self, CollectorMetrics};
use crate::collect::Collector;
use crate::config::{Config, PodInfo};

/// The collectors' metric families, registered once at start; rebuilt
/// collectors publish into the same handles.
#[derive(Debug, Clone)]
pub struct CollectorFamilies {
    pub(super) scheduler: CollectorMetrics,
    pub(super) health: HealthMetrics,
    postgres: PostgresMetrics,
    redis: RedisMetrics,
    pools: PoolMetrics,
}

impl CollectorFamilies {
    /// Registers every collector family on `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        Self {
            scheduler: CollectorMetrics::register(registry),
            health: HealthMetrics::register(registry),
            postgres: PostgresMetrics::register(registry),
            redis: RedisMetrics::register(registry),
            pools: PoolMetrics::register(registry),
        }
    }

    /// The scheduler's self-metrics.
    pub fn scheduler(&self) -> &CollectorMetrics {
        &self.scheduler
    }
}

/// Every configured interval collector, built, not running.
pub struct BuiltCollectors {
    health: Vec<HealthCollector>,
    postgres: Vec<PostgresCollector>,
    redis: Vec<RedisCollector>,
    pools: Vec<PoolCollector>,
}

impl BuiltCollectors {
    /// Every collector's name, with the health target's name for probes.
    /// Spawns every collector through `spawner`.
    pub(super) fn spawn_all(self, spawner: &Spawner<'_>) {
        spawner.spawn(self.health);
        spawner.spawn(self.postgres);
        spawner.spawn(self.redis);
        spawner.spawn(self.pools);
    }

    pub(super) fn names(&self) -> Vec<(String, Option<String>)> {
        let mut names: Vec<(String, Option<String>)> = self
            .health
            .iter()
            .map(|c| (c.name().to_owned(), Some(c.target().to_owned())))
            .collect();
        names.extend(self.postgres.iter().map(|c| (c.name().to_owned(), None)));
        names.extend(self.redis.iter().map(|c| (c.name().to_owned(), None)));
        names.extend(self.pools.iter().map(|c| (c.name().to_owned(), None)));
        names
    }

    /// Builds the health, PostgreSQL, Redis and pool collectors of `config`.
    pub fn build(
        config: &Config,
        pod: &PodInfo,
        families: &CollectorFamilies,
    ) -> Result<Self, RunError> {
        Ok(Self {
            health: build_each("health.targets", &config.health.targets, |target| {
                HealthCollector::build(target, &families.health)
            })?,
            postgres: build_each("postgres.servers", &config.postgres.servers, |server| {
                PostgresCollector::build(server, pod.ip, &families.postgres)
            })?,
            redis: build_each("redis.servers", &config.redis.servers, |server| {
                RedisCollector::build(server, pod.ip, &families.redis)
            })?,
            pools: build_each("pools.sources", &config.pools.sources, |source| {
                PoolCollector::build(source, &families.pools)
            })?,
        })
    }
}

/// Builds one collector per configured item; an error names `key[i]`.
fn build_each<T, C>(
    key: &str,
    items: &[T],
    build: impl Fn(&T) -> Result<C, String>,
) -> Result<Vec<C>, RunError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            build(item).map_err(|message| RunError::Build {
                key: format!("{key}[{i}]"),
                message,
            })
        })
        .collect()
}

/// What every collector task is spawned with.
pub struct Spawner<'a> {
    /// Where the tasks go.
    pub tasks: &'a TaskTracker,
    /// The scheduler's self-metrics.
    pub metrics: &'a CollectorMetrics,
    /// The `/status` board.
    pub status: &'a StatusBoard,
    /// Stops the tasks.
    pub stop: &'a CancellationToken,
}

impl Spawner<'_> {
    /// Spawns a scheduler task for each collector.
    pub fn spawn<C: Collector>(&self, collectors: impl IntoIterator<Item = C>) {
        for collector in collectors {
            self.tasks.spawn(scheduler::run(
                collector,
                self.metrics.clone(),
                self.status.clone(),
                self.stop.clone(),
            ));
        }
    }
}
