//! Capability denials and exceeded quotas seen during one invocation. Each is recorded
//! on the metering record; if the invocation then fails, the first one is its error.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// Which capability or quota said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenialKind {
    /// An HTTP destination (scheme, host, port, method) that is not granted or is blocked.
    HttpDestinationDenied,
    /// A granted name resolved to a loopback, link-local, private or metadata address.
    HttpAddressDenied,
    /// More requests than the grant's per-invocation count.
    HttpRequestLimit,
    /// More request body bytes than granted.
    HttpRequestBytes,
    /// More response body bytes than granted.
    HttpResponseBytes,
    /// A secret that is not both declared and granted.
    SecretDenied,
    /// KV used without a KV grant.
    KvDenied,
    /// The install's KV byte quota.
    KvQuota,
    /// A path outside the scratch directory (`..`, absolute symlinks).
    ScratchEscape,
    /// The install's scratch byte quota.
    ScratchQuota,
    /// The install's scratch entry quota (files + directories + links).
    ScratchEntries,
    /// A usage unit name that does not match the documented pattern.
    UsageUnitInvalid,
    /// A usage unit the host meters itself (`fuel`, `http_requests`, ...).
    UsageUnitReserved,
    /// More distinct usage units than one invocation may report.
    UsageUnitsExceeded,
    /// A usage quantity past the per-report cap, or a sum that would overflow.
    UsageQuantityExceeded,
    /// A model alias the node's grant does not list, or model calls without a route.
    ModelDenied,
    /// More progress (streamed deltas) than one invocation may pass on.
    ProgressExceeded,
}

impl DenialKind {
    /// Stable machine-readable name, used as the invocation's error kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpDestinationDenied => "http_destination_denied",
            Self::HttpAddressDenied => "http_address_denied",
            Self::HttpRequestLimit => "http_request_limit_exceeded",
            Self::HttpRequestBytes => "http_request_bytes_exceeded",
            Self::HttpResponseBytes => "http_response_bytes_exceeded",
            Self::SecretDenied => "secret_denied",
            Self::KvDenied => "kv_denied",
            Self::KvQuota => "kv_quota_exceeded",
            Self::ScratchEscape => "scratch_escape_denied",
            Self::ScratchQuota => "scratch_quota_exceeded",
            Self::ScratchEntries => "scratch_entries_exceeded",
            Self::UsageUnitInvalid => "usage_unit_invalid",
            Self::UsageUnitReserved => "usage_unit_reserved",
            Self::UsageUnitsExceeded => "usage_units_exceeded",
            Self::UsageQuantityExceeded => "usage_quantity_exceeded",
            Self::ModelDenied => "model_denied",
            Self::ProgressExceeded => "progress_exceeded",
        }
    }

    /// The capability this belongs to, as named in manifests.
    pub fn capability(self) -> &'static str {
        match self {
            Self::HttpDestinationDenied
            | Self::HttpAddressDenied
            | Self::HttpRequestLimit
            | Self::HttpRequestBytes
            | Self::HttpResponseBytes => "http",
            Self::SecretDenied => "secrets",
            Self::KvDenied | Self::KvQuota => "kv_bytes",
            Self::ScratchEscape | Self::ScratchQuota => "scratch_bytes",
            Self::ScratchEntries => "scratch_entries",
            Self::UsageUnitInvalid
            | Self::UsageUnitReserved
            | Self::UsageUnitsExceeded
            | Self::UsageQuantityExceeded => "usage",
            Self::ModelDenied => "models",
            Self::ProgressExceeded => "progress",
        }
    }
}

/// One refusal: what and why. Never carries secret values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// What said no.
    pub kind: DenialKind,
    /// Human-readable detail (destination, secret name, quota).
    pub detail: String,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.kind.as_str(),
            self.kind.capability(),
            self.detail
        )
    }
}

/// Denials of one invocation, shared with the parts of the host that run outside the
/// store (HTTP futures, stream wrappers).
#[derive(Clone, Default)]
pub(crate) struct DenialLog(Arc<Mutex<Vec<Denial>>>);

/// More than this many denials in one invocation are neither kept nor logged.
const MAX_KEPT: usize = 64;

impl DenialLog {
    pub(crate) fn record(&self, kind: DenialKind, detail: String) {
        let mut denials = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Past the kept ones, nothing is logged either: a plugin that provokes denials
        // in a loop must not flood the host's logs.
        if denials.len() < MAX_KEPT {
            tracing::warn!(
                kind = kind.as_str(),
                detail = detail.as_str(),
                "capability denied"
            );
            denials.push(Denial { kind, detail });
        }
    }

    pub(crate) fn take(&self) -> Vec<Denial> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
