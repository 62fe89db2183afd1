//! `Document`: a parsed TOML text that can say where each entry is.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use crate::{KeyPath, Mistake, MistakeKind, Segment};

/// A line and column in a document, both counted from 1 (the column in
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl Location {
    /// Where the byte `offset` of `text` is.
    #[must_use]
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let before = text.get(..offset.min(text.len())).unwrap_or(text);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A parsed TOML document: its values, and where each entry is written.
pub struct Document {
    table: toml::Table,
    spans: ImDocument<String>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Document {
    /// Parses `text`.
    ///
    /// # Errors
    ///
    /// A [`MistakeKind::Syntax`] mistake, with the line and column of the
    /// first syntax error.
    pub fn parse(text: &str) -> Result<Self, Mistake> {
        let syntax = |message: &str, span: Option<Range<usize>>| Mistake {
            path: KeyPath::root(),
            kind: MistakeKind::Syntax,
            // toml's messages may run over lines ("invalid array\nexpected `]`").
            message: format!(
                "not valid TOML: {}",
                message
                    .trim()
                    .lines()
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(": ")
            ),
            location: span.map(|span| Location::of_offset(text, span.start)),
        };
        let spans =
            ImDocument::parse(text.to_owned()).map_err(|e| syntax(e.message(), e.span()))?;
        let table = text
            .parse::<toml::Table>()
            .map_err(|e| syntax(e.message(), e.span()))?;
        Ok(Self { table, spans })
    }

    /// The document's values.
    #[must_use]
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The document's values, taken.
    #[must_use]
    pub fn into_table(self) -> toml::Table {
        self.table
    }

    /// Where the entry at `path` is written: its key (or, for an array
    /// element, its value). For a path that goes past what the document
    /// holds (a missing key), where the deepest entry that exists is
    /// written; `None` when not even the first key is in the document.
    #[must_use]
    pub fn locate(&self, path: &KeyPath) -> Option<Location> {
        let mut node = Node::Table(self.spans.as_table());
        let mut found: Option<Range<usize>> = None;
        for segment in path.segments() {
            let Some((span, next)) = node.child(segment) else {
                break;
            };
            found = span.or(found);
            node = next;
        }
        found.map(|span| Location::of_offset(self.spans.raw(), span.start))
    }

    /// Sets the location of each of `mistakes` that has none from its
    /// path, then sorts them in the order of the file (unlocated ones
    /// last, in their order).
    pub fn locate_all(&self, mistakes: &mut [Mistake]) {
        for mistake in mistakes.iter_mut() {
            if mistake.location.is_none() {
                mistake.location = self.locate(&mistake.path);
            }
        }
        mistakes.sort_by_key(|m| m.location.map_or((1, None), |l| (0, Some(l))));
    }
}

/// A step of the walk down the spans.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a Table),
    Value(&'a Value),
}

impl<'a> Node<'a> {
    fn table_like(self) -> Option<&'a dyn TableLike> {
        match self {
            Self::Item(item) => item.as_table_like(),
            Self::Table(table) => Some(table),
            Self::Value(value) => value.as_inline_table().map(|t| t as &dyn TableLike),
        }
    }

    fn child(self, segment: &Segment) -> Option<(Option<Range<usize>>, Node<'a>)> {
        match segment {
            Segment::Key(key) => {
                let (key, item) = self.table_like()?.get_key_value(key)?;
                Some((key.span().or_else(|| item.span()), Node::Item(item)))
            }
            Segment::Index(index) => {
                let array = match self {
                    Self::Item(Item::ArrayOfTables(tables)) => {
                        let table = tables.get(*index)?;
                        return Some((table.span(), Node::Table(table)));
                    }
                    Self::Item(Item::Value(Value::Array(array)))
                    | Self::Value(Value::Array(array)) => array,
                    _ => return None,
                };
                let value = array.get(*index)?;
                Some((value.span(), Node::Value(value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "title = \"x\"\n\n[backends.out]\ntype = \"file\"\nretry = { max_attempts = 3 }\n\n[[processors]]\ntype = \"a\"\npatterns = ['x', 'y']\n\n[[processors]]\ntype = \"b\"\n[events.\"app.login\"]\nproperties.url = { type = \"string\" }\n";

    fn at(text: &str) -> Option<(usize, usize)> {
        let doc = Document::parse(TEXT).unwrap();
        doc.locate(&KeyPath::parse(text).unwrap())
            .map(|l| (l.line, l.column))
    }

    #[test]
    fn locates_keys_tables_arrays_and_quoted_keys() {
        assert_eq!(at("title"), Some((1, 1)));
        assert_eq!(at("backends.out.type"), Some((4, 1)));
        assert_eq!(at("backends.out.retry.max_attempts"), Some((5, 11)));
        assert_eq!(at("processors[1].type"), Some((12, 1)));
        assert_eq!(at("processors[0].patterns[1]"), Some((9, 18)));
        assert_eq!(
            at(r#"events."app.login".properties.url.type"#),
            Some((14, 20))
        );
        // A key that is not there: where its table is.
        assert_eq!(at("backends.out.missing"), at("backends.out"));
        assert_eq!(at("backends.out"), Some((3, 11)));
        assert_eq!(at("nothing.here"), None);
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let mistake = Document::parse("a = [1,\n").unwrap_err();
        assert_eq!(
            mistake.message,
            "not valid TOML: invalid array: expected `]`"
        );
        let mistake = Document::parse("a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(mistake.kind, MistakeKind::Syntax);
        assert_eq!(mistake.location, Some(Location { line: 2, column: 5 }));
        assert!(
            mistake.message.starts_with("not valid TOML: "),
            "{}",
            mistake.message
        );
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        assert_eq!(
            Location::of_offset("é = 1\nab", 8),
            Location { line: 2, column: 2 }
        );
        assert_eq!(
            Location::of_offset("abc", 99),
            Location { line: 1, column: 4 }
        );
        assert_eq!(
            Location { line: 3, column: 7 }.to_string(),
            "line 3, column 7"
        );
    }

    #[test]
    fn sorts_mistakes_in_file_order_unlocated_last() {
        let doc = Document::parse(TEXT).unwrap();
        let mistake = |path: &str| Mistake {
            path: KeyPath::parse(path).unwrap(),
            kind: MistakeKind::Invalid,
            message: String::new(),
            location: None,
        };
        let mut all = [
            mistake("nowhere"),
            mistake("processors[0].type"),
            mistake("title"),
        ];
        doc.locate_all(&mut all);
        let order: Vec<String> = all.iter().map(|m| m.path.to_string()).collect();
        assert_eq!(order, ["title", "processors[0].type", "nowhere"]);
    }
}
