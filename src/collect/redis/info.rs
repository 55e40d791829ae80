//! Parsing the text replies of `INFO` and `CLIENT LIST`.

use std::collections::HashMap;
use std::net::IpAddr;

/// `INFO`'s `field:value` lines (every section), plus its keyspace section.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Info {
    fields: HashMap<String, String>,
    /// `db0:keys=1,expires=0,avg_ttl=0` as `("db0", keys, expires)`.
    pub keyspace: Vec<(String, f64, f64)>,
}

impl Info {
    /// Parses an `INFO` reply; lines it does not understand are skipped.
    pub fn parse(text: &str) -> Self {
        let mut info = Info::default();
        let mut section = "";
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('#') {
                section = name.trim();
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if section.eq_ignore_ascii_case("keyspace") {
                if let Some(db) = parse_keyspace(key, value) {
                    info.keyspace.push(db);
                }
            } else {
                info.fields.insert(key.to_owned(), value.to_owned());
            }
        }
        info
    }

    /// A field's text.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A numeric field.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.text(key)?.parse().ok()
    }
}

fn parse_keyspace(db: &str, value: &str) -> Option<(String, f64, f64)> {
    if !db.starts_with("db") || db[2..].parse::<u32>().is_err() {
        return None;
    }
    let mut keys = None;
    let mut expires = None;
    for pair in value.split(',') {
        match pair.split_once('=') {
            Some(("keys", n)) => keys = n.parse().ok(),
            Some(("expires", n)) => expires = n.parse().ok(),
            _ => {}
        }
    }
    Some((db.to_owned(), keys?, expires.unwrap_or(0.0)))
}

/// Counts the clients in a `CLIENT LIST` reply connected from `ip`, leaving
/// out connections named `exclude_name` (sidewatch's own). IPv4-mapped IPv6
/// addresses (`::ffff:10.0.0.5`, from dual-stack listeners) match their IPv4.
pub fn count_clients_from(list: &str, ip: IpAddr, exclude_name: &str) -> u64 {
    let ip = ip.to_canonical();
    list.lines()
        .filter(|line| {
            let mut addr = None;
            let mut name = "";
            for field in line.split(' ') {
                match field.split_once('=') {
                    Some(("addr", value)) => addr = Some(value),
                    Some(("name", value)) => name = value,
                    _ => {}
                }
            }
            name != exclude_name && addr.and_then(client_ip) == Some(ip)
        })
        .count() as u64
}

/// The IP of an `addr=` value: `10.0.0.5:51234`, `[::1]:51234` or `::1:51234`
/// (older servers do not bracket IPv6); `None` for Unix sockets.
fn client_ip(addr: &str) -> Option<IpAddr> {
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\r\n\
        # Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\nblocked_clients:1\r\n\r\n\
        # Memory\r\nused_memory:1048576\r\nmaxmemory:0\r\n\r\n\
        # Stats\r\nkeyspace_hits:10\r\nkeyspace_misses:2\r\n\r\n\
        # Keyspace\r\ndb0:keys=5,expires=2,avg_ttl=100\r\ndb3:keys=1,expires=0,avg_ttl=0\r\n";

    #[test]
    fn parses_fields_and_keyspace() {
        let info = Info::parse(INFO);
        assert_eq!(info.text("redis_version"), Some("7.0.15"));
        assert_eq!(info.number("connected_clients"), Some(3.0));
        assert_eq!(info.number("maxclients"), Some(10000.0));
        assert_eq!(info.number("used_memory"), Some(1_048_576.0));
        assert_eq!(info.number("redis_version"), None);
        assert_eq!(info.number("absent"), None);
        assert_eq!(
            info.keyspace,
            vec![("db0".into(), 5.0, 2.0), ("db3".into(), 1.0, 0.0)]
        );
    }

    #[test]
    fn ignores_malformed_lines() {
        let info = Info::parse("garbage\n# Keyspace\ndbx:keys=1\ndb1:nokeys\ndb2:keys=7\n");
        assert_eq!(info.keyspace, vec![("db2".into(), 7.0, 0.0)]);
    }

    #[test]
    fn counts_clients_by_address() {
        let list = "id=3 addr=127.0.0.1:5001 laddr=127.0.0.1:6379 fd=8 name=sidewatch age=1\n\
            id=4 addr=127.0.0.1:5002 laddr=127.0.0.1:6379 fd=9 name= age=1\n\
            id=5 addr=10.0.0.7:5003 fd=10 name=app age=1\n\
            id=6 addr=[::ffff:127.0.0.1]:5004 fd=11 name=worker age=1\n\
            id=7 addr=::1:5005 fd=12 name= age=1\n\
            id=8 addr=/tmp/redis.sock:0 fd=13 name= age=1\n";
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(count_clients_from(list, localhost, "sidewatch"), 2);
        assert_eq!(
            count_clients_from(list, "10.0.0.7".parse().unwrap(), "sidewatch"),
            1
        );
        assert_eq!(
            count_clients_from(list, "::1".parse().unwrap(), "sidewatch"),
            1
        );
        assert_eq!(count_clients_from(list, localhost, "nobody"), 3);
    }
}
