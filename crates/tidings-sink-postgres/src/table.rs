//! `TableName`: the target table, validated as a safe SQL identifier and
//! written quoted.

use std::fmt;

use crate::PostgresError;

/// Default for [`PostgresSinkBuilder::table`](crate::PostgresSinkBuilder::table).
pub const DEFAULT_TABLE: &str = "tidings_events";

/// The session's temporary table each batch is copied into first.
pub(crate) const STAGING_TABLE: &str = "tidings_staging";

/// PostgreSQL truncates identifiers longer than this (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER_LEN: usize = 63;

/// A table name that is safe to put into SQL: one or two identifiers
/// (`table` or `schema.table`) of ASCII letters, digits and underscores,
/// not starting with a digit, at most 63 bytes each.
///
/// Letters are folded to lower case, as PostgreSQL does with a name written
/// without quotes, and each part is then written quoted, so a name that is
/// also an SQL keyword (`user`, `order`) works.
///
/// ```
/// use tidings_sink_postgres::TableName;
///
/// let table = TableName::parse("Analytics.Events")?;
/// assert_eq!(table.to_string(), "analytics.events");
/// assert_eq!(table.quoted(), r#""analytics"."events""#);
/// assert!(TableName::parse("events; drop table users").is_err());
/// # Ok::<(), tidings_sink_postgres::PostgresError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    /// Validates `name`.
    ///
    /// # Errors
    ///
    /// [`PostgresError::Table`] naming the option `table` and what is wrong.
    pub fn parse(name: &str) -> Result<Self, PostgresError> {
        let reject = |reason| PostgresError::Table {
            table: name.to_owned(),
            reason,
        };
        let mut parts = name.split('.');
        let (schema, table) = match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, _) => (None, table),
            (Some(schema), Some(table), None) => (Some(schema), table),
            _ => {
                return Err(reject("must be `table` or `schema.table`: at most one dot"));
            }
        };
        for part in schema.iter().chain([&table]) {
            check_identifier(part).map_err(reject)?;
        }
        let table = table.to_ascii_lowercase();
        if schema.is_none() && table == STAGING_TABLE {
            return Err(reject(
                "is the name of the sink's temporary staging table: choose another or qualify it with a schema",
            ));
        }
        Ok(Self {
            schema: schema.map(str::to_ascii_lowercase),
            name: table,
        })
    }

    /// The schema, if the name is qualified.
    #[must_use]
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The table's own name, without its schema.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as SQL, each part quoted: `"schema"."table"`.
    #[must_use]
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}\"", self.name),
            None => format!("\"{}\"", self.name),
        }
    }
}

fn check_identifier(part: &str) -> Result<(), &'static str> {
    let Some(first) = part.bytes().next() else {
        return Err("every part must be non-empty");
    };
    if part.len() > MAX_IDENTIFIER_LEN {
        return Err("every part must be at most 63 bytes long");
    }
    if first.is_ascii_digit() {
        return Err("every part must start with a letter or an underscore");
    }
    if !part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(
            "may contain only ASCII letters, digits and underscores (and one dot before the table)",
        );
    }
    Ok(())
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TableName({self})")
    }
}

impl std::str::FromStr for TableName {
    type Err = PostgresError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::parse(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_accepted_folded_and_quoted() {
        for (input, shown, quoted) in [
            ("tidings_events", "tidings_events", r#""tidings_events""#),
            ("_t1", "_t1", r#""_t1""#),
            ("user", "user", r#""user""#),
            ("Events", "events", r#""events""#),
            ("public.Events", "public.events", r#""public"."events""#),
            (
                "s.tidings_staging",
                "s.tidings_staging",
                r#""s"."tidings_staging""#,
            ),
        ] {
            let table = TableName::parse(input).unwrap();
            assert_eq!(table.to_string(), shown);
            assert_eq!(table.quoted(), quoted);
        }
        let long = "a".repeat(63);
        assert_eq!(TableName::parse(&long).unwrap().name(), long);
    }

    #[test]
    fn anything_else_is_rejected_naming_the_option() {
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1abc",
            "a-b",
            "a b",
            "a;drop table x",
            "\"quoted\"",
            "a\"b",
            "tab\u{e9}",
            "a$b",
            "tidings_staging",
            &"a".repeat(64),
        ] {
            let error = TableName::parse(bad).unwrap_err();
            assert_eq!(error.option(), Some("table"), "{bad:?}");
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("invalid option `table` {bad:?}: ")),
                "{error}"
            );
        }
    }
}
