//! Built-in mappings for the pool-stats JSON shapes common pool libraries
//! produce. Each is a set of JSON pointers (see [`Mapping`]); fields set in
//! `[pools.sources.mapping]` override them. A Redis client pool exposed in
//! one of these shapes is read the same way.
//!
//! Where the pools are (`pools`): an array of pool objects (named by the
//! `name` pointer, else by index), an object of pools keyed by name, or a
//! single pool object (recognised by having the `idle`/`used`/`total` field;
//! named by `name`, else `default`).
//!
//! | preset | expected JSON | idle | used | max | pending | wait time |
//! |---|---|---|---|---|---|---|
//! | `hikaricp` | HikariCP `HikariPoolMXBean` style: `{"pools":[{"poolName":"main","activeConnections":3,"idleConnections":7,"totalConnections":10,"threadsAwaitingConnection":0,"maximumPoolSize":10}]}` | `idleConnections` | `activeConnections` | `maximumPoolSize` | `threadsAwaitingConnection` | — |
//! | `sqlalchemy` | SQLAlchemy `pool.status()` numbers: `{"pools":{"main":{"size":5,"checked_in":2,"checked_out":3,"overflow":-2,"max_overflow":10}}}` | `checked_in` | `checked_out` | `size` + `max_overflow` (when present) | — | — |
//! | `go_sql` | Go `sql.DBStats` as `encoding/json` writes it, one pool or an object of them: `{"MaxOpenConnections":20,"OpenConnections":5,"InUse":2,"Idle":3,"WaitCount":7,"WaitDuration":1500000}` | `Idle` | `InUse` | `MaxOpenConnections` (0 = unlimited: not exported) | — | average of the waits since the last read, from `WaitDuration` (ns) / `WaitCount` |
//! | `node_postgres` | node-postgres `Pool` counters, one pool or an object of them: `{"totalCount":10,"idleCount":4,"waitingCount":0,"max":10}` (`max` from `pool.options.max`, optional) | `idleCount` | `totalCount` − `idleCount` | `max` | `waitingCount` | — |
//! | `deadpool` | deadpool `Status` (bb8 `State` can be served the same way), one pool or an object of them: `{"max_size":16,"size":5,"available":3,"waiting":0}` | `available` (≥ 0) | `size` − `available` | `max_size` | `waiting` | — |

use crate::config::Preset;

/// A JSON pointer and whether a pool without it is a shape error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// RFC 6901 pointer, relative to the pool object.
    pub pointer: String,
    /// Missing means the JSON does not have the expected shape.
    pub required: bool,
}

/// Where every number is, after the preset and the overrides are combined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping {
    /// Pointer to the pools, relative to the document.
    pub pools: String,
    /// Pointer to an array item's name.
    pub name: Option<String>,
    /// Idle connections.
    pub idle: Option<Field>,
    /// Connections in use.
    pub used: Option<Field>,
    /// Open connections (idle + used).
    pub total: Option<Field>,
    /// The pool's maximum size.
    pub max: Option<Field>,
    /// Added to `max` when present (SQLAlchemy's `max_overflow`).
    pub max_extra: Option<Field>,
    /// Requests waiting for a connection.
    pub pending: Option<Field>,
    /// Wait time (a running total when `wait_count` is set).
    pub wait_time: Option<Field>,
    /// Seconds per unit of `wait_time`.
    pub wait_scale: f64,
    /// Number of waits so far.
    pub wait_count: Option<Field>,
    /// Negative `idle` values (deadpool's `available` when requests wait) count as 0.
    pub clamp_idle: bool,
}

fn optional(pointer: &str) -> Option<Field> {
    Some(Field {
        pointer: pointer.to_owned(),
        required: false,
    })
}

fn required(pointer: &str) -> Option<Field> {
    Some(Field {
        pointer: pointer.to_owned(),
        required: true,
    })
}

/// The mapping a preset starts from (`custom` starts empty).
pub fn mapping(preset: Preset) -> Mapping {
    let base = Mapping {
        wait_scale: 1.0,
        ..Mapping::default()
    };
    match preset {
        Preset::Hikaricp => Mapping {
            pools: "/pools".into(),
            name: Some("/poolName".into()),
            idle: required("/idleConnections"),
            used: required("/activeConnections"),
            total: optional("/totalConnections"),
            max: optional("/maximumPoolSize"),
            pending: optional("/threadsAwaitingConnection"),
            ..base
        },
        Preset::Sqlalchemy => Mapping {
            pools: "/pools".into(),
            idle: required("/checked_in"),
            used: required("/checked_out"),
            max: optional("/size"),
            max_extra: optional("/max_overflow"),
            ..base
        },
        Preset::GoSql => Mapping {
            pools: String::new(),
            name: Some("/name".into()),
            idle: required("/Idle"),
            used: required("/InUse"),
            total: optional("/OpenConnections"),
            max: optional("/MaxOpenConnections"),
            wait_time: optional("/WaitDuration"),
            wait_scale: 1e-9,
            wait_count: optional("/WaitCount"),
            ..base
        },
        Preset::NodePostgres => Mapping {
            pools: String::new(),
            name: Some("/name".into()),
            idle: required("/idleCount"),
            total: required("/totalCount"),
            max: optional("/max"),
            pending: optional("/waitingCount"),
            ..base
        },
        Preset::Deadpool => Mapping {
            pools: String::new(),
            name: Some("/name".into()),
            idle: required("/available"),
            total: required("/size"),
            max: optional("/max_size"),
            pending: optional("/waiting"),
            clamp_idle: true,
            ..base
        },
        Preset::Custom => base,
    }
}

/// The preset's mapping with every pointer set in `overrides` taking its place
/// (an overridden field is required: a typo in it shows as a shape error).
pub fn resolve(preset: Preset, overrides: &crate::config::PoolMapping) -> Mapping {
    let mut mapping = mapping(preset);
    let set = |field: &mut Option<Field>, pointer: &Option<String>| {
        if let Some(pointer) = pointer {
            *field = required(pointer);
        }
    };
    if let Some(pools) = &overrides.pools {
        mapping.pools = pools.clone();
    }
    if let Some(name) = &overrides.name {
        mapping.name = Some(name.clone());
    }
    set(&mut mapping.idle, &overrides.idle);
    set(&mut mapping.used, &overrides.used);
    set(&mut mapping.total, &overrides.total);
    set(&mut mapping.max, &overrides.max);
    set(&mut mapping.pending, &overrides.pending);
    set(&mut mapping.wait_time, &overrides.wait_time);
    set(&mut mapping.wait_count, &overrides.wait_count);
    if let Some(unit) = overrides.wait_time_unit {
        mapping.wait_scale = unit.seconds();
    }
    mapping
}
