//! The subset of KQL a client needs to find VMs and what they are attached to in Azure
//! Resource Graph, in one query, as the portal does.
//!
//! Operators: `where`, `project`, `extend`, `order by`/`sort by`, `limit`/`take`,
//! `mv-expand` (`kind=bag|array`, `with_itemindex`, several expressions, `limit`; the legacy
//! `mvexpand` with its default limit of 128) and
//! `join` (`kind=innerunique` — KQL's default —, `inner`, `leftouter`, `fullouter`, the
//! flavours Resource Graph supports; `on col`, `on $left.a == $right.b`, several keys).
//! Functions: `tostring`, `tolower`, `toupper`, `strcat`, `iff`/`iif`, `case`, `isempty`,
//! `isnotempty`, `isnull`, `isnotnull`, `not`. Comparisons: `==`, `=~`, `!=`, `!~`, `<`,
//! `<=`, `>`, `>=`, `contains`, `contains_cs`, `startswith`, `endswith`, `has` and their
//! `!` forms, `in`, `in~`, `!in`, `!in~`. Paths: `col.field`, `col['field']`, `col[0]`.
//!
//! Semantics follow Microsoft's KQL documentation: `mv-expand` of an empty array keeps no
//! row and of a non-array keeps the row as is; `join` keeps every column of both sides, a
//! right column whose name is taken gets `1` (then `2`…) appended; `leftouter` keeps left
//! rows without a match with empty right columns (`""` for strings, null otherwise);
//! `innerunique` keeps one left row per key. Anything else is refused with
//! `UnsupportedQuery` (or `ParserFailure` for what is not KQL), never answered
//! approximately: a client that works against the emulator must not rely on a query that
//! means something else on Azure.

mod ast;
mod eval;
mod lexer;
mod parser;
mod run;

use std::sync::Arc;

use serde_json::Value;

pub(crate) use parser::parse;

/// Why a query was refused: Resource Graph's detail `code` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryError {
    pub code: &'static str,
    pub message: String,
}

fn unsupported(message: impl Into<String>) -> QueryError {
    QueryError {
        code: "UnsupportedQuery",
        message: format!(
            "{} (the emulator implements a subset of KQL; see docs/world-file.md)",
            message.into()
        ),
    }
}

/// A value in a row, shared between the rows a `where`, `mv-expand` or `join` makes.
pub(crate) type Cell = Arc<Value>;
/// A row: one cell per column of its table's schema.
pub(crate) type Row = Vec<Cell>;

/// What a column holds, as far as KQL's empty values care: a string column's empty value
/// is `""`, every other column's is null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnType {
    String,
    Bool,
    Number,
    Dynamic,
}

/// A column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnDef {
    pub name: String,
    pub kind: ColumnType,
}

/// The columns of a table, in order.
pub(crate) type Schema = Vec<ColumnDef>;

/// The source columns a pipeline can read: `None` for all of them. A source may leave
/// the others null (Resource Graph then does not render `properties` for a query that
/// never looks at it).
pub(crate) type Needed = Option<std::collections::BTreeSet<String>>;

/// The table a query starts from (and each `join` subquery too).
pub(crate) trait Source {
    /// Its columns.
    fn schema(&self) -> &Schema;
    /// Every row the caller may see.
    fn rows(&self, needed: &Needed) -> Vec<Row>;
    /// The rows whose `column` equals one of `values` (compared case-insensitively), or
    /// `None` when the column has no index. A superset of the exact matches is fine: the
    /// whole condition is tested afterwards.
    fn candidates(&self, column: &str, values: &[String], needed: &Needed) -> Option<Vec<Row>>;
    /// How many rows [`Source::candidates`] would give, without making them; `None`
    /// when the column has no index.
    fn count_candidates(&self, column: &str, values: &[String]) -> Option<usize>;
}

#[cfg(test)]
mod tests;
