//! `usage`: custom billable units into the invocation's metering record.

use crate::bindings::usage::Host;
use crate::state::HostState;

/// Distinct unit names per invocation; more is a plugin bug or an attack on the record.
const MAX_UNITS: usize = 64;
const MAX_UNIT_NAME: usize = 64;

impl Host for HostState {
    async fn report(&mut self, unit: String, quantity: u64) -> wasmtime::Result<()> {
        self.meter.host_calls += 1;
        if unit.is_empty() || unit.len() > MAX_UNIT_NAME {
            wasmtime::bail!("usage unit name must be 1..={MAX_UNIT_NAME} bytes");
        }
        let known = self.meter.usage.contains_key(&unit);
        if !known && self.meter.usage.len() >= MAX_UNITS {
            wasmtime::bail!("more than {MAX_UNITS} distinct usage units reported");
        }
        let total = self.meter.usage.entry(unit).or_default();
        *total = total.saturating_add(quantity);
        Ok(())
    }
}
