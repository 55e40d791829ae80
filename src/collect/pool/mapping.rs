//! Applying a [`Mapping`] to a pool-stats JSON document.

use serde_json::Value;

use super::presets::{Field, Mapping};

/// One pool's numbers, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolStats {
    /// The pool's name (from the app; bounded before it becomes a label).
    pub name: String,
    /// Idle connections.
    pub idle: f64,
    /// Connections in use.
    pub used: f64,
    /// Maximum size, when reported (and not 0 = unlimited).
    pub max: Option<f64>,
    /// Requests waiting for a connection, when reported.
    pub pending: Option<f64>,
    /// Wait time in seconds (a running total when `wait_count` is set).
    pub wait_time: Option<f64>,
    /// Number of waits so far, when reported.
    pub wait_count: Option<f64>,
}

/// The document does not match the mapping; `pointer` is the full pointer
/// (from the document root) that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer:?}: {problem}")]
pub struct ShapeError {
    /// The failing JSON pointer, from the document root.
    pub pointer: String,
    /// What is wrong there.
    pub problem: String,
}

fn shape(pointer: impl Into<String>, problem: impl Into<String>) -> ShapeError {
    ShapeError {
        pointer: pointer.into(),
        problem: problem.into(),
    }
}

/// Reads at most `limit` pools from `document`; returns them and how many
/// more there were.
pub fn read(
    document: &Value,
    mapping: &Mapping,
    limit: usize,
) -> Result<(Vec<PoolStats>, usize), ShapeError> {
    let root = document
        .pointer(&mapping.pools)
        .ok_or_else(|| shape(&mapping.pools, "not found"))?;
    let entries: Vec<(String, String, &Value)> = match root {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = name_of(item, mapping).unwrap_or_else(|| i.to_string());
                (name, format!("{}/{i}", mapping.pools), item)
            })
            .collect(),
        Value::Object(_) if is_pool(root, mapping) => {
            let name = name_of(root, mapping).unwrap_or_else(|| "default".into());
            vec![(name, mapping.pools.clone(), root)]
        }
        Value::Object(map) => map
            .iter()
            .map(|(key, item)| {
                (
                    key.clone(),
                    format!("{}/{}", mapping.pools, escape(key)),
                    item,
                )
            })
            .collect(),
        _ => {
            return Err(shape(
                &mapping.pools,
                "expected an array or object of pools, or one pool object",
            ))
        }
    };
    let extra = entries.len().saturating_sub(limit);
    let pools = entries
        .into_iter()
        .take(limit)
        .map(|(name, at, item)| read_pool(name, &at, item, mapping))
        .collect::<Result<_, _>>()?;
    Ok((pools, extra))
}

fn is_pool(value: &Value, mapping: &Mapping) -> bool {
    [&mapping.idle, &mapping.used, &mapping.total]
        .into_iter()
        .flatten()
        .any(|field| value.pointer(&field.pointer).is_some())
}

fn name_of(item: &Value, mapping: &Mapping) -> Option<String> {
    match item.pointer(mapping.name.as_deref()?)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn read_pool(name: String, at: &str, item: &Value, m: &Mapping) -> Result<PoolStats, ShapeError> {
    if !item.is_object() {
        return Err(shape(at, "expected a pool object"));
    }
    let get = |field: &Option<Field>| number(item, at, field.as_ref());
    let (idle, used, total) = (get(&m.idle)?, get(&m.used)?, get(&m.total)?);
    let idle = idle.map(|v| if m.clamp_idle { v.max(0.0) } else { v });
    let missing = |field: &Option<Field>, what: &str| {
        let pointer = field.as_ref().map_or(String::new(), |f| f.pointer.clone());
        shape(format!("{at}{pointer}"), format!("{what} not found"))
    };
    let (idle, used) = match (idle, used, total) {
        (Some(idle), Some(used), _) => (idle, used),
        (Some(idle), None, Some(total)) => (idle, (total - idle).max(0.0)),
        (None, Some(used), Some(total)) => ((total - used).max(0.0), used),
        (None, _, _) => return Err(missing(&m.idle, "idle connections")),
        (_, None, _) => return Err(missing(&m.used, "connections in use")),
    };
    let max = match (get(&m.max)?, get(&m.max_extra)?) {
        (Some(max), extra) if max > 0.0 => Some(max + extra.unwrap_or(0.0).max(0.0)),
        _ => None,
    };
    Ok(PoolStats {
        name,
        idle,
        used,
        max,
        pending: get(&m.pending)?,
        wait_time: get(&m.wait_time)?.map(|v| v * m.wait_scale),
        wait_count: get(&m.wait_count)?,
    })
}

/// A number at `field` in `item`: `None` when the field is optional and absent
/// (or null); numeric strings are accepted.
fn number(item: &Value, at: &str, field: Option<&Field>) -> Result<Option<f64>, ShapeError> {
    let Some(field) = field else {
        return Ok(None);
    };
    let full = || format!("{at}{}", field.pointer);
    match item.pointer(&field.pointer) {
        None | Some(Value::Null) if field.required => Err(shape(full(), "not found")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| shape(full(), "not a finite number")),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| shape(full(), "not a number")),
        Some(_) => Err(shape(full(), "not a number")),
    }
}

/// Escapes a key for use in a JSON pointer (RFC 6901: `~` → `~0`, `/` → `~1`).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::collect::pool::presets;
    use crate::config::{PoolMapping, Preset};

    fn preset(p: Preset) -> Mapping {
        presets::mapping(p)
    }

    fn one(document: Value, mapping: &Mapping) -> PoolStats {
        let (mut pools, extra) = read(&document, mapping, 32).unwrap();
        assert_eq!((pools.len(), extra), (1, 0), "{pools:?}");
        pools.remove(0)
    }

    #[test]
    fn hikaricp() {
        let stats = one(
            json!({"pools":[{"poolName":"main","activeConnections":3,"idleConnections":7,"totalConnections":10,"threadsAwaitingConnection":2,"maximumPoolSize":10}]}),
            &preset(Preset::Hikaricp),
        );
        assert_eq!(
            stats,
            PoolStats {
                name: "main".into(),
                idle: 7.0,
                used: 3.0,
                max: Some(10.0),
                pending: Some(2.0),
                wait_time: None,
                wait_count: None
            }
        );
    }

    #[test]
    fn sqlalchemy_adds_max_overflow() {
        let mapping = preset(Preset::Sqlalchemy);
        let stats = one(
            json!({"pools":{"main":{"size":5,"checked_in":2,"checked_out":3,"overflow":-2,"max_overflow":10}}}),
            &mapping,
        );
        assert_eq!(
            (stats.name.as_str(), stats.idle, stats.used, stats.max),
            ("main", 2.0, 3.0, Some(15.0))
        );
        let stats = one(
            json!({"pools":{"x":{"size":5,"checked_in":5,"checked_out":0}}}),
            &mapping,
        );
        assert_eq!(stats.max, Some(5.0));
    }

    #[test]
    fn go_sql_single_or_map_and_unlimited_max() {
        let mapping = preset(Preset::GoSql);
        let dbstats = json!({"MaxOpenConnections":0,"OpenConnections":5,"InUse":2,"Idle":3,"WaitCount":7,"WaitDuration":1_500_000_000u64});
        let stats = one(dbstats.clone(), &mapping);
        assert_eq!(
            (stats.name.as_str(), stats.idle, stats.used, stats.max),
            ("default", 3.0, 2.0, None)
        );
        assert_eq!((stats.wait_time, stats.wait_count), (Some(1.5), Some(7.0)));
        let (pools, _) = read(
            &json!({"primary": dbstats, "replica": {"Idle":1,"InUse":0}}),
            &mapping,
            32,
        )
        .unwrap();
        let names: Vec<_> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["primary", "replica"]);
    }

    #[test]
    fn node_postgres_and_deadpool_derive_used() {
        let stats = one(
            json!({"totalCount":10,"idleCount":4,"waitingCount":1}),
            &preset(Preset::NodePostgres),
        );
        assert_eq!(
            (stats.idle, stats.used, stats.pending, stats.max),
            (4.0, 6.0, Some(1.0), None)
        );
        let stats = one(
            json!({"max_size":16,"size":5,"available":-2,"waiting":2}),
            &preset(Preset::Deadpool),
        );
        assert_eq!(
            (stats.idle, stats.used, stats.max, stats.pending),
            (0.0, 5.0, Some(16.0), Some(2.0))
        );
    }

    #[test]
    fn custom_mapping_and_overrides() {
        let overrides = PoolMapping {
            pools: Some("/pools".into()),
            idle: Some("/idle".into()),
            used: Some("/active".into()),
            max: Some("/max".into()),
            pending: Some("/pending".into()),
            wait_time: Some("/wait_ms".into()),
            wait_time_unit: Some(crate::config::TimeUnit::Ms),
            ..PoolMapping::default()
        };
        let mapping = presets::resolve(Preset::Custom, &overrides);
        let stats = one(
            json!({"pools":{"primary":{"active":4,"idle":"6","max":10,"pending":0,"wait_ms":250}}}),
            &mapping,
        );
        assert_eq!(
            (stats.idle, stats.used, stats.max, stats.wait_time),
            (6.0, 4.0, Some(10.0), Some(0.25))
        );
        // An overridden pointer is required.
        let error = read(
            &json!({"pools":{"primary":{"active":4,"idle":6,"max":10}}}),
            &mapping,
            32,
        )
        .unwrap_err();
        assert_eq!(error.pointer, "/pools/primary/pending");
    }

    #[test]
    fn shape_errors_name_the_pointer() {
        let mapping = preset(Preset::Hikaricp);
        let cases = [
            (json!({"other": []}), "/pools"),
            (json!({"pools": 3}), "/pools"),
            (
                json!({"pools": [{"poolName":"a","activeConnections":1}]}),
                "/pools/0/idleConnections",
            ),
            (
                json!({"pools": [{"activeConnections":"x","idleConnections":1}]}),
                "/pools/0/activeConnections",
            ),
            (json!({"pools": [7]}), "/pools/0"),
        ];
        for (document, pointer) in cases {
            assert_eq!(
                read(&document, &mapping, 32).unwrap_err().pointer,
                pointer,
                "{document}"
            );
        }
        let sqlalchemy = preset(Preset::Sqlalchemy);
        let error = read(&json!({"pools":{"a/b":{"checked_in":1}}}), &sqlalchemy, 32).unwrap_err();
        assert_eq!(error.pointer, "/pools/a~1b/checked_out");
    }

    #[test]
    fn pools_beyond_the_limit_are_counted() {
        let pools: Vec<Value> = (0..40).map(|i| json!({"poolName": format!("p{i}"), "activeConnections": 1, "idleConnections": 1})).collect();
        let (read_pools, extra) =
            read(&json!({ "pools": pools }), &preset(Preset::Hikaricp), 32).unwrap();
        assert_eq!((read_pools.len(), extra), (32, 8));
    }
}
