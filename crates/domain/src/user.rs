//! Users, their memberships and roles, and the permission rules that follow from a role.

use std::fmt;
use std::str::FromStr;

use crate::ids::{ContactId, UserId, WorkspaceId};
use crate::timestamp::Timestamp;
use crate::workspace::WorkspaceSlug;

/// A person (or bot) who calls the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Unique email, if any.
    pub email: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
}

/// What creating a user needs.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Display name (1..=200 characters).
    pub name: String,
    /// Optional unique email.
    pub email: Option<String>,
}

/// A member's role in a workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including settings, credentials, members and deleting contacts.
    Owner,
    /// Sees and works everything; assigns to anyone; no settings, members or deletions.
    Admin,
    /// Sees and works only what is assigned to them.
    Member,
}

impl Role {
    /// The stored and wire name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            other => Err(format!("`{other}` is not a role (owner, admin, member)")),
        }
    }
}

/// A user's membership of a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The member.
    pub user_id: UserId,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub created_at: Timestamp,
}

/// A membership with the workspace's public identity, as `GET /api/me` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipSummary {
    /// Workspace id.
    pub workspace_id: WorkspaceId,
    /// Workspace slug.
    pub workspace_slug: WorkspaceSlug,
    /// Workspace name.
    pub workspace_name: String,
    /// The caller's role there.
    pub role: Role,
}

/// Who a presented API token belongs to: the user, and every workspace they are a member of
/// (ordered by slug). Read in one query per request, so that checking the caller's role in the
/// workspace a request names costs no further query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The token the request presented.
    pub token_id: crate::ids::TokenId,
    /// The token's user.
    pub user: User,
    /// Their memberships.
    pub memberships: Vec<MembershipSummary>,
}

impl Principal {
    /// The membership of the workspace named by `reference`: its id, or its slug exactly.
    #[must_use]
    pub fn membership(&self, reference: &str) -> Option<&MembershipSummary> {
        match reference.parse::<WorkspaceId>() {
            Ok(id) => self.membership_of(id),
            Err(_) => self
                .memberships
                .iter()
                .find(|m| m.workspace_slug.as_str() == reference),
        }
    }

    /// The membership of a workspace by id.
    #[must_use]
    pub fn membership_of(&self, workspace_id: WorkspaceId) -> Option<&MembershipSummary> {
        self.memberships
            .iter()
            .find(|m| m.workspace_id == workspace_id)
    }

    /// The user acting in one of their workspaces.
    #[must_use]
    pub fn actor(&self, membership: &MembershipSummary) -> Actor {
        Actor {
            user_id: self.user.id,
            workspace_id: membership.workspace_id,
            role: membership.role,
        }
    }
}

/// A workspace member with their user, as the members list shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user: User,
    /// Their role.
    pub role: Role,
    /// When they joined.
    pub created_at: Timestamp,
}

/// Who is acting, inside one workspace: the subject of every permission check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The caller.
    pub user_id: UserId,
    /// The workspace they act in.
    pub workspace_id: WorkspaceId,
    /// Their role there.
    pub role: Role,
}

/// What an actor may see of a workspace's conversations and contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Owners and admins: everything in the workspace.
    All,
    /// Members: conversations whose conversation or contact is assigned to this user, and
    /// contacts assigned to this user.
    AssignedTo(UserId),
}

impl Actor {
    /// What this actor may see.
    #[must_use]
    pub const fn visibility(&self) -> Visibility {
        match self.role {
            Role::Owner | Role::Admin => Visibility::All,
            Role::Member => Visibility::AssignedTo(self.user_id),
        }
    }

    /// Whether the actor sees a conversation with these assignments.
    #[must_use]
    pub fn sees_conversation(
        &self,
        conversation_assignee: Option<UserId>,
        contact_assignee: Option<UserId>,
    ) -> bool {
        match self.visibility() {
            Visibility::All => true,
            Visibility::AssignedTo(me) => {
                conversation_assignee == Some(me) || contact_assignee == Some(me)
            }
        }
    }

    /// Whether the actor sees a contact assigned as given.
    #[must_use]
    pub fn sees_contact(&self, contact_assignee: Option<UserId>) -> bool {
        match self.visibility() {
            Visibility::All => true,
            Visibility::AssignedTo(me) => contact_assignee == Some(me),
        }
    }

    /// Whether the actor may assign a conversation they see to `assignee` (`None`: unassign).
    /// Members may assign only to themselves or to nobody; that the assignee is a member of the
    /// workspace is checked separately.
    #[must_use]
    pub fn may_assign_to(&self, assignee: Option<UserId>) -> bool {
        match self.role {
            Role::Owner | Role::Admin => true,
            Role::Member => assignee.is_none() || assignee == Some(self.user_id),
        }
    }

    /// Whether the actor may change workspace settings, credentials and members.
    #[must_use]
    pub const fn may_manage_workspace(&self) -> bool {
        matches!(self.role, Role::Owner)
    }

    /// Whether the actor may delete contacts (and with them their conversation and messages).
    #[must_use]
    pub const fn may_delete_contacts(&self) -> bool {
        matches!(self.role, Role::Owner)
    }
}

/// A contact's assignment, needed to decide visibility of a contact by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactAssignment {
    /// The contact.
    pub contact_id: ContactId,
    /// Who it is assigned to.
    pub assigned_to: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            user_id: UserId::new(),
            workspace_id: WorkspaceId::new(),
            role,
        }
    }

    #[test]
    fn owners_and_admins_see_everything() {
        for role in [Role::Owner, Role::Admin] {
            let a = actor(role);
            assert!(a.sees_conversation(None, None));
            assert!(a.sees_contact(Some(UserId::new())));
            assert!(a.may_assign_to(Some(UserId::new())));
        }
    }

    #[test]
    fn members_see_only_their_assignments() {
        let a = actor(Role::Member);
        let other = UserId::new();
        assert!(!a.sees_conversation(None, None));
        assert!(!a.sees_conversation(Some(other), Some(other)));
        assert!(a.sees_conversation(Some(a.user_id), None));
        assert!(a.sees_conversation(None, Some(a.user_id)));
        assert!(a.sees_contact(Some(a.user_id)));
        assert!(!a.sees_contact(None));
    }

    #[test]
    fn members_assign_only_themselves_or_nobody() {
        let a = actor(Role::Member);
        assert!(a.may_assign_to(None));
        assert!(a.may_assign_to(Some(a.user_id)));
        assert!(!a.may_assign_to(Some(UserId::new())));
    }

    #[test]
    fn only_owners_manage_and_delete() {
        assert!(actor(Role::Owner).may_manage_workspace());
        assert!(actor(Role::Owner).may_delete_contacts());
        for role in [Role::Admin, Role::Member] {
            assert!(!actor(role).may_manage_workspace());
            assert!(!actor(role).may_delete_contacts());
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Owner, Role::Admin, Role::Member] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
