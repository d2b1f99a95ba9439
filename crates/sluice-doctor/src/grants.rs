//! The GRANT statements that restore read access, spelled once: the privilege checks' fixes use
//! them, and so do the alerts the service raises when a discovery finds access lost.

use crate::quote::{ident, qualified};

/// `GRANT SELECT ON TABLE schema.relation TO user;` (views and materialized views included:
/// PostgreSQL takes `TABLE` for every relation kind).
pub fn grant_select(schema: &str, relation: &str, user: &str) -> String {
    format!("GRANT SELECT ON TABLE {} TO {};", qualified(schema, relation), ident(user))
}

/// `GRANT USAGE ON SCHEMA schema TO user;`
pub fn grant_usage(schema: &str, user: &str) -> String {
    format!("GRANT USAGE ON SCHEMA {} TO {};", ident(schema), ident(user))
}

/// `GRANT SELECT ON ALL TABLES IN SCHEMA schema TO user;`
pub fn grant_select_all(schema: &str, user: &str) -> String {
    format!("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {};", ident(schema), ident(user))
}

/// `ALTER DEFAULT PRIVILEGES FOR ROLE creator IN SCHEMA schema GRANT SELECT ON TABLES TO user;`:
/// what the tables `creator` creates (or recreates) there later will be readable by.
pub fn default_select(creator: &str, schema: &str, user: &str) -> String {
    format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {};",
        ident(creator),
        ident(schema),
        ident(user)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_quoted() {
        assert_eq!(grant_select("Sales", "order\"s", "ro"), "GRANT SELECT ON TABLE \"Sales\".\"order\"\"s\" TO ro;");
        assert_eq!(grant_usage("a b", "Ro"), "GRANT USAGE ON SCHEMA \"a b\" TO \"Ro\";");
        assert_eq!(grant_select_all("public", "ro"), "GRANT SELECT ON ALL TABLES IN SCHEMA public TO ro;");
        assert_eq!(
            default_select("elt", "analytics", "sluice_ro"),
            "ALTER DEFAULT PRIVILEGES FOR ROLE elt IN SCHEMA analytics GRANT SELECT ON TABLES TO sluice_ro;"
        );
    }
}
