//! The `cidr` modifier: a small scalar function, `sigma_cidr_match(ip, net)`,
//! true when the text `ip` is an IPv4 or IPv6 address inside the network
//! `net` (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128).
//! A value that is not an address (CloudTrail puts service names such as
//! `ec2.amazonaws.com` in `sourceIPAddress`) is no match; NULL stays NULL.
//! An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is compared as IPv4.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;

/// The function's SQL name.
pub const UDF_NAME: &str = "sigma_cidr_match";

/// A parsed network: its address with the host bits cleared, and the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    bits: u128,
    prefix: u32,
    v4: bool,
}

impl Net {
    /// True when `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v4) = to_bits(ip);
        if v4 != self.v4 {
            return false;
        }
        let width = if v4 { 32 } else { 128 };
        mask(bits, self.prefix, width) == self.bits
    }
}

fn to_bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), true),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), true),
            None => (u128::from(a), false),
        },
    }
}

fn mask(bits: u128, prefix: u32, width: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        let keep = width - prefix;
        (bits >> keep) << keep
    }
}

/// Parses `addr/prefix` or a bare address.
pub fn parse_net(text: &str) -> Result<Net, String> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (
            a,
            Some(
                p.parse::<u32>()
                    .map_err(|_| format!("prefix {p:?} is not a number"))?,
            ),
        ),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
    let (bits, v4) = match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), true),
        IpAddr::V6(a) => (u128::from(a), false),
    };
    let width = if v4 { 32 } else { 128 };
    let prefix = prefix.unwrap_or(width);
    if prefix > width {
        return Err(format!("prefix /{prefix} is longer than {width} bits"));
    }
    Ok(Net {
        bits: mask(bits, prefix, width),
        prefix,
        v4,
    })
}

fn matches(ip: &str, net: &str) -> Option<bool> {
    let net = parse_net(net).ok()?;
    Some(ip.trim().parse::<IpAddr>().is_ok_and(|a| net.contains(a)))
}

fn invoke(args: &[ColumnarValue]) -> datafusion::common::Result<ColumnarValue> {
    let [ip, net] = args else {
        return Err(DataFusionError::Plan(format!(
            "{UDF_NAME} takes two arguments"
        )));
    };
    // The usual case: a column of addresses and one literal network.
    if let ColumnarValue::Scalar(ScalarValue::Utf8(net)) = net {
        let parsed = net
            .as_deref()
            .map(parse_net)
            .transpose()
            .map_err(|e| DataFusionError::Execution(format!("{UDF_NAME}: bad network: {e}")))?;
        return Ok(match ip {
            ColumnarValue::Scalar(ScalarValue::Utf8(ip)) => {
                ColumnarValue::Scalar(ScalarValue::Boolean(match (ip, parsed) {
                    (Some(ip), Some(net)) => {
                        Some(ip.trim().parse::<IpAddr>().is_ok_and(|a| net.contains(a)))
                    }
                    _ => None,
                }))
            }
            ColumnarValue::Array(a) => {
                let ips = strings(a)?;
                let out: BooleanArray = ips
                    .iter()
                    .map(|ip| {
                        let net = parsed?;
                        ip.map(|ip| ip.trim().parse::<IpAddr>().is_ok_and(|a| net.contains(a)))
                    })
                    .collect();
                ColumnarValue::Array(Arc::new(out))
            }
            other => {
                return Err(DataFusionError::Execution(format!(
                    "{UDF_NAME}: unexpected argument {other:?}"
                )));
            }
        });
    }
    let arrays = ColumnarValue::values_to_arrays(args)?;
    let [ips, nets] = arrays.as_slice() else {
        return Err(DataFusionError::Internal(format!(
            "{UDF_NAME}: two arguments gave {} arrays",
            arrays.len()
        )));
    };
    let (ips, nets) = (strings(ips)?, strings(nets)?);
    let out: BooleanArray = ips
        .iter()
        .zip(nets.iter())
        .map(|(ip, net)| matches(ip?, net?))
        .collect();
    Ok(ColumnarValue::Array(Arc::new(out)))
}

fn strings(a: &ArrayRef) -> datafusion::common::Result<&StringArray> {
    a.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
        DataFusionError::Execution(format!("{UDF_NAME}: expected text, got {}", a.data_type()))
    })
}

/// Registers `sigma_cidr_match` in a session.
pub fn register(ctx: &mut SessionContext) {
    ctx.register_udf(create_udf(
        UDF_NAME,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Boolean,
        Volatility::Immutable,
        Arc::new(invoke),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        assert_eq!(matches("10.1.2.3", "10.0.0.0/8"), Some(true));
        assert_eq!(matches("11.1.2.3", "10.0.0.0/8"), Some(false));
        assert_eq!(matches("192.168.1.255", "192.168.1.0/24"), Some(true));
        assert_eq!(matches("192.168.2.0", "192.168.1.0/24"), Some(false));
        assert_eq!(matches("1.2.3.4", "0.0.0.0/0"), Some(true));
        assert_eq!(matches("2001:db8::1", "2001:db8::/32"), Some(true));
        assert_eq!(matches("2001:db9::1", "2001:db8::/32"), Some(false));
        assert_eq!(matches("::ffff:10.1.2.3", "10.0.0.0/8"), Some(true));
        assert_eq!(matches("10.1.2.3", "::/0"), Some(false));
        assert_eq!(matches("ec2.amazonaws.com", "10.0.0.0/8"), Some(false));
        assert_eq!(matches("10.1.2.3", "10.1.2.3"), Some(true));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("nope/8").is_err());
    }
}
