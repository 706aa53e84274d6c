//! Who holds what on a Redis Cluster: the hash slot of a key or sharded
//! channel, and the slot map (`CLUSTER SLOTS`: each range's primary and
//! how many replicas it has). The ws-node's broker places subscriptions
//! with it; the Redis connection decides where a `WAIT` can be answered.

use redis::Value;

use crate::redis_conn::{RedisConn, RedisFailure};

/// A server, as `host:port`.
pub type Addr = String;

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// One range of slots (inclusive) and who serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub primary: Addr,
    /// Replicas the cluster lists for the primary (failed ones are not).
    pub replicas: usize,
}

/// Who owns which slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server holds every key and channel.
    Single(Addr),
    /// The cluster's slot map.
    Cluster(Vec<SlotRange>),
}

impl Topology {
    /// The server that holds `name`; None while no known primary owns its
    /// slot (mid-failover).
    pub fn owner(&self, name: &[u8]) -> Option<&Addr> {
        match self {
            Self::Single(addr) => Some(addr),
            Self::Cluster(ranges) => range_of(ranges, name).map(|range| &range.primary),
        }
    }

    /// The primaries that own slots, each once.
    pub fn primaries(&self) -> Vec<Addr> {
        match self {
            Self::Single(addr) => vec![addr.clone()],
            Self::Cluster(ranges) => {
                let mut primaries: Vec<Addr> = ranges.iter().map(|r| r.primary.clone()).collect();
                primaries.sort();
                primaries.dedup();
                primaries
            }
        }
    }

    /// The cluster's current slot map, from any reachable node.
    pub async fn read(conn: &RedisConn) -> Result<Self, RedisFailure> {
        let value: Value = conn
            .cmd(&redis::cmd("CLUSTER").arg("SLOTS").to_owned())
            .await?;
        Ok(Self::Cluster(parse_cluster_slots(&value)))
    }
}

/// The range holding `name`'s slot.
pub fn range_of<'a>(ranges: &'a [SlotRange], name: &[u8]) -> Option<&'a SlotRange> {
    let slot = slot(name);
    ranges
        .iter()
        .find(|range| (range.start..=range.end).contains(&slot))
}

/// The hash slot of a key or sharded channel: CRC16 (XMODEM) of its hash
/// tag (the part between the first `{` and the next `}`, when not empty),
/// else of the whole name, modulo 16384.
pub fn slot(name: &[u8]) -> u16 {
    let hashed = name
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &name[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(name);
    crc16(hashed) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replica...], ...]`.
pub fn parse_cluster_slots(value: &Value) -> Vec<SlotRange> {
    let Value::Array(ranges) = value else {
        return Vec::new();
    };
    let int = |v: &Value| match v {
        Value::Int(n) => u16::try_from(*n).ok(),
        _ => None,
    };
    let text = |v: &Value| match v {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let Some(Value::Array(primary)) = parts.get(2) else {
                return None;
            };
            let host = text(primary.first()?)?;
            let port = int(primary.get(1)?)?;
            Some(SlotRange {
                start: int(parts.first()?)?,
                end: int(parts.get(1)?)?,
                primary: format!("{host}:{port}"),
                replicas: parts.len().saturating_sub(3),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"x{bar}y"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % SLOTS);
    }

    #[test]
    fn owners_and_replicas_come_from_the_slot_map() {
        let node = |port| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
            ])
        };
        let value = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node(7000),
                node(7003),
            ]),
            Value::Array(vec![Value::Int(8192), Value::Int(16383), node(7001)]),
        ]);
        let ranges = parse_cluster_slots(&value);
        assert_eq!((ranges[0].replicas, ranges[1].replicas), (1, 0));
        let topology = Topology::Cluster(ranges);
        assert_eq!(
            topology.owner(b"foo").map(String::as_str),
            Some("127.0.0.1:7001")
        );
        assert_eq!(
            topology.owner(b"{bar}x").map(String::as_str),
            Some("127.0.0.1:7000")
        );
        assert_eq!(topology.primaries(), ["127.0.0.1:7000", "127.0.0.1:7001"]);
        assert_eq!(Topology::Cluster(vec![]).owner(b"foo"), None);
    }
}
