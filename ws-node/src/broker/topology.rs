//! Which server holds a user's channel: the one server, or on a Redis
//! Cluster the primary that owns the channel's hash slot (read with
//! `CLUSTER SLOTS`).

use redis::Value;
use shared::redis_conn::{RedisConn, RedisFailure};

/// A server, as `host:port`.
pub type Addr = String;

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// Who owns which slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server holds every channel.
    Single(Addr),
    /// Slot ranges (inclusive) and their primaries, as the cluster says.
    Cluster(Vec<(u16, u16, Addr)>),
}

impl Topology {
    /// The server that holds `channel`; None while no known primary owns
    /// its slot (mid-failover).
    pub fn owner(&self, channel: &[u8]) -> Option<&Addr> {
        match self {
            Self::Single(addr) => Some(addr),
            Self::Cluster(ranges) => {
                let slot = slot(channel);
                ranges
                    .iter()
                    .find(|(start, end, _)| (*start..=*end).contains(&slot))
                    .map(|(_, _, addr)| addr)
            }
        }
    }

    /// The cluster's current slot map, from any reachable node.
    pub async fn read(conn: &RedisConn) -> Result<Self, RedisFailure> {
        let value: Value = conn
            .cmd(&redis::cmd("CLUSTER").arg("SLOTS").to_owned())
            .await?;
        Ok(Self::Cluster(parse_slots(&value)))
    }
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

/// `CLUSTER SLOTS`: `[[start, end, [host, port, id, ...], replicas...], ...]`.
fn parse_slots(value: &Value) -> Vec<(u16, u16, Addr)> {
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
            Some((
                int(parts.first()?)?,
                int(parts.get(1)?)?,
                format!("{host}:{port}"),
            ))
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
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"x{bar}y"), 5061);
        assert_eq!(slot(b"{}x"), crc16(b"{}x") % SLOTS);
    }

    #[test]
    fn owners_come_from_the_slot_map() {
        let value = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(7000),
                ]),
            ]),
            Value::Array(vec![
                Value::Int(8192),
                Value::Int(16383),
                Value::Array(vec![
                    Value::BulkString(b"127.0.0.1".to_vec()),
                    Value::Int(7001),
                ]),
            ]),
        ]);
        let topology = Topology::Cluster(parse_slots(&value));
        assert_eq!(
            topology.owner(b"foo").map(String::as_str),
            Some("127.0.0.1:7001")
        );
        assert_eq!(
            topology.owner(b"{bar}x").map(String::as_str),
            Some("127.0.0.1:7000")
        );
        assert_eq!(Topology::Cluster(vec![]).owner(b"foo"), None);
    }
}
