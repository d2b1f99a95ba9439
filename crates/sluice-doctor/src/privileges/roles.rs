//! The roles a user reaches through `pg_auth_members`, and how each was reached.
//!
//! A role's privileges are the user's own when every membership on the way passes them on
//! (INHERIT); otherwise the user still reaches them with `SET ROLE`. Both count for "can change
//! anything"; only the first counts for "can read".

use std::collections::BTreeMap;

use super::catalog::V16;
use crate::quote::ident;

/// The attributes (`pg_roles.rol*`) that matter to the checks. Attributes are never inherited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attrs {
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
}

/// One reachable role. `path` names the roles from the user's direct membership to this role;
/// it is empty for the user itself.
#[derive(Debug, Clone)]
pub(crate) struct RoleNode {
    pub oid: u32,
    pub name: String,
    pub path: Vec<String>,
    pub inherited: bool,
    pub attrs: Attrs,
}

/// How a privilege reaches the user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reach {
    Direct,
    Public,
    /// Through memberships that all inherit; the path as in [`RoleNode::path`].
    Inherited(Vec<String>),
    /// Only after `SET ROLE`.
    SetRole(Vec<String>),
}

/// The name PostgreSQL 14+ gives the implicit role of the database owner.
pub(crate) const DATABASE_OWNER_ROLE: &str = "pg_database_owner";

impl Reach {
    /// "granted directly", "granted to PUBLIC", "via role etl_writer",
    /// "via role etl_writer, through analysts", "via SET ROLE admin, a membership without INHERIT".
    pub(crate) fn describe(&self) -> String {
        match self {
            Reach::Direct => "granted directly".into(),
            Reach::Public => "granted to PUBLIC".into(),
            Reach::Inherited(path) => format!("via role {}", chain(path)),
            Reach::SetRole(path) => {
                format!("via SET ROLE {}, a membership without INHERIT", chain(path))
            }
        }
    }

    /// The first membership on the path: revoking it removes the path.
    pub(crate) fn first_role(&self) -> Option<&str> {
        match self {
            Reach::Inherited(p) | Reach::SetRole(p) => p.first().map(String::as_str),
            _ => None,
        }
    }

    pub(crate) fn is_public(&self) -> bool {
        *self == Reach::Public
    }
}

fn chain(path: &[String]) -> String {
    match path.split_last() {
        None => String::new(),
        Some((last, [])) => ident(last),
        Some((last, through)) => {
            format!("{}, through {}", ident(last), through.iter().map(|r| ident(r)).collect::<Vec<_>>().join(" → "))
        }
    }
}

/// The user's role graph.
#[derive(Debug, Clone)]
pub(crate) struct Roles {
    pub me_oid: u32,
    pub me: String,
    nodes: BTreeMap<u32, RoleNode>,
    /// Grantors of each of the user's direct memberships, by role name.
    grantors: BTreeMap<String, Vec<String>>,
    version_num: u32,
}

impl Roles {
    /// `db_owner`: `(oid of pg_database_owner, oid of the database owner)` on 14+.
    pub(crate) fn new(
        me_oid: u32,
        me: String,
        nodes: Vec<RoleNode>,
        grantors: BTreeMap<String, Vec<String>>,
        db_owner: Option<(u32, u32)>,
        version_num: u32,
    ) -> Roles {
        let mut nodes: BTreeMap<u32, RoleNode> = nodes.into_iter().map(|n| (n.oid, n)).collect();
        // The database owner is implicitly a member of pg_database_owner (which owns schema
        // public from 15 on); pg_auth_members does not show it.
        if let Some((implicit, owner)) = db_owner {
            if let Some(o) = nodes.get(&owner).cloned() {
                nodes.entry(implicit).or_insert_with(|| RoleNode {
                    oid: implicit,
                    name: DATABASE_OWNER_ROLE.into(),
                    path: [o.path, vec![DATABASE_OWNER_ROLE.to_string()]].concat(),
                    inherited: o.inherited,
                    attrs: Attrs::default(),
                });
            }
        }
        Roles { me_oid, me, nodes, grantors, version_num }
    }

    /// Every role the user reaches (itself included) and PUBLIC (oid 0).
    pub(crate) fn reachable_oids(&self) -> Vec<u32> {
        std::iter::once(0).chain(self.nodes.keys().copied()).collect()
    }

    /// The roles whose privileges the user holds without SET ROLE, and PUBLIC.
    pub(crate) fn inherited_oids(&self) -> Vec<u32> {
        std::iter::once(0).chain(self.nodes.values().filter(|n| n.inherited).map(|n| n.oid)).collect()
    }

    pub(crate) fn reach(&self, oid: u32) -> Option<Reach> {
        if oid == 0 {
            return Some(Reach::Public);
        }
        if oid == self.me_oid {
            return Some(Reach::Direct);
        }
        self.nodes.get(&oid).map(|n| {
            if n.inherited {
                Reach::Inherited(n.path.clone())
            } else {
                Reach::SetRole(n.path.clone())
            }
        })
    }

    pub(crate) fn is_inherited(&self, oid: u32) -> bool {
        oid == 0 || self.nodes.get(&oid).is_some_and(|n| n.inherited)
    }

    /// Reachable roles other than the user itself.
    pub(crate) fn others(&self) -> impl Iterator<Item = &RoleNode> {
        self.nodes.values().filter(move |n| n.oid != self.me_oid)
    }

    /// A reachable role by name (predefined roles are looked up this way).
    pub(crate) fn by_name(&self, name: &str) -> Option<&RoleNode> {
        self.others().find(|n| n.name == name)
    }

    /// The statements that take `role` away from the user (one per grantor on 16+, where
    /// a membership granted by another role survives a plain REVOKE).
    pub(crate) fn revoke_membership(&self, role: &str) -> Vec<String> {
        let plain = format!("REVOKE {} FROM {};", ident(role), ident(&self.me));
        if self.version_num < V16 {
            return vec![plain];
        }
        match self.grantors.get(role) {
            Some(list) if !list.is_empty() => list
                .iter()
                .map(|g| format!("REVOKE {} FROM {} GRANTED BY {};", ident(role), ident(&self.me), ident(g)))
                .collect(),
            _ => vec![plain],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(oid: u32, name: &str, path: &[&str], inherited: bool) -> RoleNode {
        RoleNode {
            oid,
            name: name.into(),
            path: path.iter().map(|s| s.to_string()).collect(),
            inherited,
            attrs: Attrs::default(),
        }
    }

    fn graph(version_num: u32) -> Roles {
        let mut grantors = BTreeMap::new();
        grantors.insert("analysts".to_string(), vec!["postgres".to_string()]);
        Roles::new(
            100,
            "sluice_ro".into(),
            vec![
                node(100, "sluice_ro", &[], true),
                node(200, "analysts", &["analysts"], true),
                node(300, "etl_writer", &["analysts", "etl_writer"], true),
                node(400, "Admin Role", &["Admin Role"], false),
            ],
            grantors,
            Some((6171, 100)),
            version_num,
        )
    }

    #[test]
    fn paths_read_as_the_issue_words_them() {
        let r = graph(150_000);
        assert_eq!(r.reach(0), Some(Reach::Public));
        assert_eq!(r.reach(100).map(|x| x.describe()).as_deref(), Some("granted directly"));
        assert_eq!(r.reach(200).map(|x| x.describe()).as_deref(), Some("via role analysts"));
        assert_eq!(r.reach(300).map(|x| x.describe()).as_deref(), Some("via role etl_writer, through analysts"));
        assert_eq!(
            r.reach(400).map(|x| x.describe()).as_deref(),
            Some("via SET ROLE \"Admin Role\", a membership without INHERIT")
        );
        assert_eq!(r.reach(999), None);
    }

    #[test]
    fn the_database_owner_reaches_pg_database_owner() {
        let r = graph(150_000);
        assert_eq!(r.reach(6171), Some(Reach::Inherited(vec!["pg_database_owner".into()])));
        assert_eq!(r.reachable_oids(), vec![0, 100, 200, 300, 400, 6171]);
        assert_eq!(r.inherited_oids(), vec![0, 100, 200, 300, 6171]);
    }

    #[test]
    fn membership_revokes_name_the_grantor_from_16() {
        assert_eq!(graph(150_000).revoke_membership("analysts"), vec!["REVOKE analysts FROM sluice_ro;"]);
        assert_eq!(
            graph(160_000).revoke_membership("analysts"),
            vec!["REVOKE analysts FROM sluice_ro GRANTED BY postgres;"]
        );
        assert_eq!(graph(160_000).revoke_membership("Admin Role"), vec!["REVOKE \"Admin Role\" FROM sluice_ro;"]);
    }
}
