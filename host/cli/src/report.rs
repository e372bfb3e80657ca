//! Human-readable run reports: per-node status, outputs and a metering table.

use std::fmt::Write as _;

use hyyve_runtime::ComponentInfo;
use hyyve_workflow::{NodeStatus, RunReport, RunStatus};

fn status_label(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Succeeded => "ok",
        NodeStatus::Cached => "cached",
        NodeStatus::Failed => "FAILED",
        NodeStatus::Skipped => "skipped",
        NodeStatus::NotRun => "not run",
    }
}

/// The report as printed by `hyyve run`.
pub fn render_run(report: &RunReport) -> String {
    let mut out = String::new();
    let width = report
        .nodes
        .iter()
        .map(|n| n.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(out, "run {}", report.run_id);
    for node in &report.nodes {
        let _ = writeln!(out, "  {:<width$}  {}", node.id, status_label(node.status));
        if let Some(outputs) = &node.outputs {
            let text = serde_json::to_string(outputs).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<width$}    outputs: {}",
                "",
                ellipsize(&text, 200)
            );
        }
        if let Some(e) = &node.error {
            let _ = writeln!(out, "  {:<width$}    {}: {}", "", e.kind, e.message);
        }
    }
    let _ = writeln!(out, "\nmetering");
    let _ = writeln!(
        out,
        "  {:<width$}  {:>14}  {:>10}  {:>12}  {:>10}  usage",
        "node", "fuel", "wall µs", "peak mem", "host calls"
    );
    for node in &report.nodes {
        let m = &node.metering;
        let usage: Vec<String> = m.usage.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "  {:<width$}  {:>14}  {:>10}  {:>12}  {:>10}  {}",
            node.id,
            m.fuel,
            m.wall_time_us,
            m.peak_memory_bytes,
            m.host_calls,
            usage.join(" ")
        );
    }
    let status = match report.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "FAILED",
    };
    let _ = writeln!(out, "\nrun {status} in {} µs", report.wall_time_us);
    out
}

/// `hyyve plugin inspect` output.
pub fn render_inspect(info: &ComponentInfo) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digest   {}", info.digest);
    let _ = writeln!(out, "world    {}", info.world.describe());
    let _ = writeln!(out, "imports");
    for i in &info.imports {
        let _ = writeln!(out, "  {i}");
    }
    let _ = writeln!(out, "exports");
    for e in &info.exports {
        let _ = writeln!(out, "  {e}");
    }
    for t in &info.node_types {
        let _ = writeln!(out, "\nnode type {} ({}, {})", t.name, t.title, t.category);
        let _ = writeln!(out, "  {}", t.description);
        let _ = writeln!(out, "  config  {}", t.config_schema);
        for p in &t.inputs {
            let req = if p.required { "required" } else { "optional" };
            let _ = writeln!(out, "  in  {} ({req})  {}", p.name, p.schema);
        }
        for p in &t.outputs {
            let _ = writeln!(out, "  out {}  {}", p.name, p.schema);
        }
    }
    if let Some(provider) = &info.provider {
        let _ = writeln!(out, "\nprovider {} ({})", provider.name, provider.title);
        let _ = writeln!(out, "  {}", provider.description);
        let _ = writeln!(out, "  config  {}", provider.config_schema);
        for m in &provider.models {
            let window = m
                .context_window
                .map(|w| format!(", {w} tokens"))
                .unwrap_or_default();
            let tools = if m.supports_tools { ", tools" } else { "" };
            let _ = writeln!(out, "  model {} ({}{window}{tools})", m.id, m.kind);
        }
    }
    if let Some(channel) = &info.channel {
        let _ = writeln!(out, "\nchannel {} ({})", channel.name, channel.title);
        let _ = writeln!(out, "  {}", channel.description);
        let _ = writeln!(out, "  config  {}", channel.config_schema);
    }
    out
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}
