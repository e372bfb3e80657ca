//! Roles and what each may do: the permission matrix. `docs/permissions.md` is rendered
//! from [`matrix_markdown`] and a test keeps it equal to the code.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A member's or API key's role in a workspace, strongest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including other owners and the workspace itself.
    Owner,
    /// Everything inside the workspace except owner-level grants.
    Admin,
    /// Builds and runs: projects, workflows, runs.
    Member,
    /// Reads only.
    Viewer,
}

impl Role {
    /// All roles, strongest first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether `self` is at least as strong as `other` (owner ≥ admin ≥ member ≥ viewer).
    pub fn at_least(self, other: Role) -> bool {
        self <= other
    }
}

/// Something a request does, checked against the caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the workspace, its projects, members and the marketplace.
    Read,
    /// Create, rename or delete projects.
    WriteProjects,
    /// Publish signed packages to the registry.
    Publish,
    /// List API keys (never their secrets).
    ListKeys,
    /// Create or revoke API keys (never above the caller's own role).
    ManageKeys,
    /// Add, change or remove members (never above the caller's own role).
    ManageMembers,
    /// Create workflows and add versions.
    WriteWorkflows,
    /// Start and cancel runs.
    Run,
    /// Install and uninstall plugins in the workspace.
    Install,
    /// Change the organization's policy (vetting rule, publishers, capability bounds).
    ManagePolicy,
    /// Read the organization's review queue, approve and reject its requests.
    Vet,
    /// Set and delete workspace secrets (values are write-only for everyone).
    ManageSecrets,
    /// Read and check the workspace's audit log.
    ReadAudit,
}

impl Action {
    /// Every action, in the order of the documented matrix.
    pub const ALL: [Action; 13] = [
        Action::Read,
        Action::WriteProjects,
        Action::WriteWorkflows,
        Action::Run,
        Action::Publish,
        Action::Install,
        Action::ListKeys,
        Action::ManageKeys,
        Action::ManageMembers,
        Action::ManageSecrets,
        Action::ReadAudit,
        Action::ManagePolicy,
        Action::Vet,
    ];

    /// The weakest role allowed to do it.
    pub fn minimum_role(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::WriteProjects | Action::WriteWorkflows | Action::Run | Action::Publish => {
                Role::Member
            }
            Action::Install
            | Action::ListKeys
            | Action::ManageKeys
            | Action::ManageMembers
            | Action::ManageSecrets
            | Action::ReadAudit => Role::Admin,
            Action::ManagePolicy | Action::Vet => Role::Owner,
        }
    }

    /// A short description for the documented matrix.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Read => {
                "read workspace, projects, members, marketplace, installs, workflows, runs, usage, secret names"
            }
            Action::WriteWorkflows => "create workflows, add versions, delete workflows",
            Action::Run => "start and cancel runs",
            Action::Install => "install / uninstall plugins in the workspace",
            Action::ManagePolicy => "change the organization's policy",
            Action::Vet => "review the organization's vetting queue: approve / reject",
            Action::WriteProjects => "create, rename, delete projects",
            Action::Publish => "publish signed packages, yank versions (publisher-signed)",
            Action::ListKeys => "list API keys (secrets are never shown again)",
            Action::ManageKeys => "create / revoke API keys up to own role",
            Action::ManageMembers => "add / change / remove members up to own role",
            Action::ManageSecrets => "set / delete workspace secrets (values are never read back)",
            Action::ReadAudit => "read and verify the workspace's audit log",
        }
    }
}

/// Whether `role` may do `action`.
pub fn allows(role: Role, action: Action) -> bool {
    role.at_least(action.minimum_role())
}

/// The permission matrix as a Markdown document (committed as `docs/permissions.md`).
pub fn matrix_markdown() -> String {
    let mut out = String::from(
        "# Permission matrix\n\n\
         Generated from `host/server/src/roles.rs` (`hyyve admin permissions`); a test keeps \
         this file equal to the code. Every API key and member has one role in one \
         workspace; objects of any other workspace do not exist for it (404).\n\n\
         | action |",
    );
    for role in Role::ALL {
        out.push_str(&format!(" {} |", role.as_str()));
    }
    out.push_str("\n| --- |");
    for _ in Role::ALL {
        out.push_str(" :-: |");
    }
    out.push('\n');
    for action in Action::ALL {
        out.push_str(&format!("| {} |", action.describe()));
        for role in Role::ALL {
            out.push_str(if allows(role, action) {
                " yes |"
            } else {
                " no |"
            });
        }
        out.push('\n');
    }
    out
}
