//! `sluice doctor --fix-sql`: every SQL fix in a report, as one script a superuser runs with psql.
//!
//! The script runs in one transaction (all or nothing), stops at the first error, and can run
//! again: every statement the privilege checks write is idempotent (GRANT, REVOKE, ALTER DEFAULT
//! PRIVILEGES, ALTER ROLE, ALTER … OWNER TO). A statement that two checks both suggest is written
//! once.

use std::collections::HashSet;

use crate::privileges::IDS;
use crate::quote::{comment, ident, lines};
use crate::report::{Report, Status};

impl Report {
    /// The consolidated fix script for the privilege checks that warned or failed.
    pub fn fix_sql(&self) -> String {
        let mut seen: HashSet<String> = HashSet::new();
        let mut body: Vec<String> = Vec::new();
        for check in &self.checks {
            if !IDS.contains(&check.id.as_ref()) || !matches!(check.status, Status::Warn | Status::Fail) {
                continue;
            }
            let Some(fix) = &check.fix else { continue };
            let mut block = Vec::new();
            let mut statements = 0;
            for line in lines(fix) {
                let trimmed = line.trim();
                if trimmed.is_empty() {
                    continue;
                }
                if trimmed.starts_with("--") {
                    block.push(trimmed.to_string());
                } else if seen.insert(trimmed.to_string()) {
                    block.push(trimmed.to_string());
                    statements += 1;
                }
            }
            if statements == 0 {
                continue;
            }
            body.push(comment(&format!(
                "{} ({}): {}",
                check.id,
                match check.status {
                    Status::Fail => "fail",
                    _ => "warn",
                },
                check.summary
            )));
            body.extend(block);
            body.push(String::new());
        }
        let who = match (&self.source.user, &self.source.database) {
            (Some(u), Some(d)) => format!("role {} on database {}", ident(u), ident(d)),
            _ => "this source".to_string(),
        };
        if body.is_empty() {
            return format!("{}\n", comment(&format!("sluice doctor: nothing to fix for {who}.")));
        }
        let mut out = vec![
            comment(&format!("sluice doctor: fixes for {who}.")),
            comment("Run as a superuser with psql, connected to that database. It runs in one transaction"),
            comment("and every statement is idempotent: running it again is safe."),
            "\\set ON_ERROR_STOP on".to_string(),
            "BEGIN;".to_string(),
            String::new(),
        ];
        out.extend(body);
        out.push("COMMIT;".to_string());
        out.join("\n") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use crate::report::{Check, CheckId, Report, SourceSummary, Status};

    fn source() -> SourceSummary {
        SourceSummary {
            host: None,
            port: None,
            database: Some("Sales Data".into()),
            user: Some("sluice_ro".into()),
            sslmode: None,
            network: None,
        }
    }

    #[test]
    fn joins_fixes_once_and_skips_prose_and_passes() {
        let checks = vec![
            Check::new(CheckId::TLS, Status::Warn, "not verified").fix(Some("use sslmode=verify-full".into())),
            Check::new(CheckId::READ_ONLY, Status::Fail, "can change data")
                .fix(Some("REVOKE etl_writer FROM sluice_ro;\nREVOKE INSERT ON TABLE a.b FROM sluice_ro;".into())),
            Check::new(CheckId::ROLE_ATTRIBUTES, Status::Warn, "x")
                .fix(Some("REVOKE etl_writer FROM sluice_ro;\n-- a note".into())),
            Check::new(CheckId::SCHEMA_USAGE, Status::Pass, "fine")
                .fix(Some("GRANT USAGE ON SCHEMA a TO sluice_ro;".into())),
            Check::new(CheckId::TABLE_SELECT, Status::Warn, "one table\nDROP TABLE x;")
                .fix(Some("GRANT SELECT ON TABLE \"we\nird\" TO sluice_ro;".into())),
        ];
        let sql = Report::new(source(), None, checks).fix_sql();
        assert_eq!(
            sql,
            "-- sluice doctor: fixes for role sluice_ro on database \"Sales Data\".\n\
             -- Run as a superuser with psql, connected to that database. It runs in one transaction\n\
             -- and every statement is idempotent: running it again is safe.\n\
             \\set ON_ERROR_STOP on\n\
             BEGIN;\n\
             \n\
             -- read_only (fail): can change data\n\
             REVOKE etl_writer FROM sluice_ro;\n\
             REVOKE INSERT ON TABLE a.b FROM sluice_ro;\n\
             \n\
             -- table_select (warn): one table\\nDROP TABLE x;\n\
             GRANT SELECT ON TABLE \"we\nird\" TO sluice_ro;\n\
             \n\
             COMMIT;\n"
        );
    }

    #[test]
    fn says_so_when_there_is_nothing_to_fix() {
        let report = Report::new(source(), None, vec![]);
        assert_eq!(
            report.fix_sql(),
            "-- sluice doctor: nothing to fix for role sluice_ro on database \"Sales Data\".\n"
        );
    }
}
