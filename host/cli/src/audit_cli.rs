//! `hyyve audit`: the local audit log, printed or checked.

use std::process::ExitCode;

use crate::local::Local;

/// `hyyve audit`'s arguments.
#[derive(clap::Args)]
pub struct AuditArgs {
    /// Only check the hash chain and print the number of entries.
    #[arg(long)]
    verify: bool,
    /// Print entries as JSON lines.
    #[arg(long)]
    json: bool,
}

/// Prints the entries, or checks the chain.
pub fn exec(local: &Local, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let AuditArgs { verify, json } = args;
    let log = local.audit_log()?;
    if verify {
        println!("audit log intact: {} entries", log.verify()?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in log.entries()? {
        if json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            println!(
                "{:>5} {} {} {} {} {}",
                e.seq, e.at, e.event.actor, e.event.action, e.event.subject, e.event.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
