//! `usage`: custom billable units into the invocation's metering record.
//!
//! What a plugin reports is billed to the tenant, so a report is checked before it
//! counts: the unit name must match [`UNIT_NAME_PATTERN`] and not be one of the host's
//! own units ([`RESERVED_UNITS`]), at most [`MAX_UNITS`] distinct units per invocation,
//! at most [`MAX_QUANTITY_PER_REPORT`] per report, and a unit's sum stays within i64.
//! A refused report is a denial on the record and does not count; the invocation goes
//! on (the plugin may log or retry with a valid unit).

use std::collections::BTreeMap;

use wasmtime::component::{HasData, Linker};

use crate::bindings::usage::{self, Host};
use crate::denial::DenialKind;
use crate::state::{HostState, Invocation};

/// Distinct unit names per invocation.
pub const MAX_UNITS: usize = 16;

/// Longest unit name, in bytes.
pub const MAX_UNIT_NAME: usize = 48;

/// One report's quantity at most (a trillion: far above any real token count, far below
/// overflow of a month's sum).
pub const MAX_QUANTITY_PER_REPORT: u64 = 1_000_000_000_000;

/// The documented shape of a unit name.
pub const UNIT_NAME_PATTERN: &str = "^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)*$";

/// Names of what the host meters itself; a plugin cannot report them.
pub const RESERVED_UNITS: &[&str] = &[
    "fuel",
    "wall_time",
    "wall_time_us",
    "memory",
    "peak_memory_bytes",
    "host_calls",
    "http",
    "http_requests",
    "http_bytes_sent",
    "http_bytes_received",
    "kv",
    "kv_bytes",
    "scratch",
    "scratch_bytes",
    "invocations",
    "runs",
    "denials",
    "logs",
    "logs_dropped",
];

/// Whether `unit` matches [`UNIT_NAME_PATTERN`] within [`MAX_UNIT_NAME`] bytes: lowercase
/// words of letters, digits, `_` and `-`, joined by dots (`llm.output-tokens`, `images`).
pub fn valid_unit_name(unit: &str) -> bool {
    unit.len() <= MAX_UNIT_NAME
        && unit.split('.').all(|word| {
            let mut bytes = word.bytes();
            bytes.next().is_some_and(|b| b.is_ascii_lowercase())
                && bytes
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// Whether `unit` is, or is under, one of the host's own names (`fuel`, `http.bytes`).
pub fn reserved_unit(unit: &str) -> bool {
    let first = unit.split('.').next().unwrap_or(unit);
    first == "hyyve" || RESERVED_UNITS.contains(&first)
}

/// Why a report was refused, with the denial it records.
fn refusal(
    unit: &str,
    quantity: u64,
    usage: &BTreeMap<String, u64>,
) -> Option<(DenialKind, String)> {
    let shown: String = unit.chars().take(MAX_UNIT_NAME).collect();
    if !valid_unit_name(unit) {
        return Some((
            DenialKind::UsageUnitInvalid,
            format!(
                "unit `{}` does not match {UNIT_NAME_PATTERN} (at most {MAX_UNIT_NAME} bytes)",
                shown.escape_default()
            ),
        ));
    }
    if reserved_unit(unit) {
        return Some((
            DenialKind::UsageUnitReserved,
            format!("unit `{unit}` is one the host meters itself"),
        ));
    }
    if quantity > MAX_QUANTITY_PER_REPORT {
        return Some((
            DenialKind::UsageQuantityExceeded,
            format!("{quantity} {unit} in one report; at most {MAX_QUANTITY_PER_REPORT}"),
        ));
    }
    match usage.get(unit) {
        // Sums stay within i64: the usage tables store them as BIGINT.
        Some(total)
            if total
                .checked_add(quantity)
                .is_none_or(|sum| sum > i64::MAX as u64) =>
        {
            Some((
                DenialKind::UsageQuantityExceeded,
                format!("the sum of `{unit}` would overflow"),
            ))
        }
        Some(_) => None,
        None if usage.len() >= MAX_UNITS => Some((
            DenialKind::UsageUnitsExceeded,
            format!(
                "unit `{unit}` would be the {}th; at most {MAX_UNITS}",
                MAX_UNITS + 1
            ),
        )),
        None => None,
    }
}

/// The usage capability's view of an invocation: it writes the shared metering record.
pub(crate) struct Usage<'a> {
    pub(crate) invocation: &'a mut Invocation,
}

/// Links `hyyve:plugin/usage` through [`Usage`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    usage::add_to_linker::<HostState, UsageCapability>(linker, |s| Usage {
        invocation: &mut s.invocation,
    })
}

struct UsageCapability;

impl HasData for UsageCapability {
    type Data<'a> = Usage<'a>;
}

impl Host for Usage<'_> {
    async fn report(&mut self, unit: String, quantity: u64) -> wasmtime::Result<()> {
        let invocation = &mut *self.invocation;
        invocation.host_call();
        if let Some((kind, detail)) = refusal(&unit, quantity, &invocation.meter.usage) {
            invocation.denials.record(kind, detail);
            return Ok(());
        }
        let total = invocation.meter.usage.entry(unit).or_default();
        // Checked above; saturating only keeps this line panic-free.
        *total = total.saturating_add(quantity);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_valid_report_is_summed_and_a_reserved_unit_is_refused() {
        let mut invocation = Invocation::for_test(hyyve_policy::Grant::default());
        let mut usage = Usage {
            invocation: &mut invocation,
        };
        usage.report("llm.output-tokens".into(), 40).await.unwrap();
        usage.report("llm.output-tokens".into(), 2).await.unwrap();
        usage.report("fuel".into(), 1).await.unwrap();
        assert_eq!(invocation.meter.usage["llm.output-tokens"], 42);
        assert!(!invocation.meter.usage.contains_key("fuel"));
        assert_eq!(invocation.denied().len(), 1);
        assert_eq!(invocation.meter.host_calls, 3);
    }

    #[test]
    fn unit_names_follow_the_pattern() {
        for good in ["tokens", "llm.output-tokens", "images_1024", "a.b.c"] {
            assert!(valid_unit_name(good), "{good}");
        }
        let long = "a".repeat(MAX_UNIT_NAME + 1);
        for bad in [
            "", "Tokens", "1tokens", "-tokens", "tok ens", ".tokens", "tokens.", "a..b", "tökens",
            &long,
        ] {
            assert!(!valid_unit_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_hosts_own_units_are_reserved() {
        for name in [
            "fuel",
            "wall_time_us",
            "http.bytes",
            "hyyve.anything",
            "scratch_bytes",
        ] {
            assert!(reserved_unit(name), "{name}");
        }
        assert!(!reserved_unit("tokens"));
        assert!(!reserved_unit("fuelish"));
    }

    #[test]
    fn quantities_and_unit_counts_are_bounded() {
        let near_max = BTreeMap::from([("tokens".to_owned(), i64::MAX as u64 - 1)]);
        assert_eq!(
            refusal("tokens", MAX_QUANTITY_PER_REPORT + 1, &BTreeMap::new()).map(|r| r.0),
            Some(DenialKind::UsageQuantityExceeded)
        );
        assert_eq!(
            refusal("tokens", 2, &near_max).map(|r| r.0),
            Some(DenialKind::UsageQuantityExceeded)
        );
        assert_eq!(refusal("tokens", 1, &near_max), None, "up to i64::MAX");
        let full: BTreeMap<String, u64> = (0..MAX_UNITS).map(|i| (format!("u{i}"), 1)).collect();
        assert_eq!(
            refusal("another", 1, &full).map(|r| r.0),
            Some(DenialKind::UsageUnitsExceeded)
        );
        assert_eq!(refusal("u0", 1, &full), None, "a known unit still counts");
    }
}
