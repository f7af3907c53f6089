//! A typed builder for the small part of KQL `jit` sends to Resource Graph.
//!
//! A VM name typed by a person ends up in a query; pasting it into a KQL string would
//! let a name such as `x' or name != '` change the query. [`ResourcesQuery`] therefore
//! takes values only as data (quoted and escaped here), columns only from a fixed set,
//! and projections only as `&'static str` written by the programmer. It produces exactly
//! the subset the emulator implements and Resource Graph accepts:
//!
//! `Resources | where <cond> [and <cond>]… | <stage>… | project col[, alias = dotted.path]…
//! | order by col [asc|desc] | limit N`, with conditions `=~ == != !~ in~ in` on `id`,
//! `name`, `type`, `resourceGroup`, `subscriptionId`, `location`.
//!
//! A `<stage>` (an `extend`, `mv-expand` or `join`, as the portal's queries use to bring
//! a VM's NICs, public IPs and subnets into its rows) is a `&'static str` too: written by
//! the programmer, never holding a value, so the only data in a query still goes through
//! the quoted conditions.

use std::fmt::Write as _;

/// A column a condition may test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KqlColumn {
    /// `id`.
    Id,
    /// `name`.
    Name,
    /// `type` (Resource Graph lower-cases it).
    Type,
    /// `resourceGroup`.
    ResourceGroup,
    /// `subscriptionId`.
    SubscriptionId,
    /// `location`.
    Location,
}

impl KqlColumn {
    /// The column name in KQL.
    pub fn as_str(self) -> &'static str {
        match self {
            KqlColumn::Id => "id",
            KqlColumn::Name => "name",
            KqlColumn::Type => "type",
            KqlColumn::ResourceGroup => "resourceGroup",
            KqlColumn::SubscriptionId => "subscriptionId",
            KqlColumn::Location => "location",
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KqlComparison {
    /// `=~` (equal, ignoring case).
    EqualsIgnoreCase,
    /// `==`.
    Equals,
    /// `!=`.
    NotEquals,
    /// `!~` (not equal, ignoring case).
    NotEqualsIgnoreCase,
}

impl KqlComparison {
    fn as_str(self) -> &'static str {
        match self {
            KqlComparison::EqualsIgnoreCase => "=~",
            KqlComparison::Equals => "==",
            KqlComparison::NotEquals => "!=",
            KqlComparison::NotEqualsIgnoreCase => "!~",
        }
    }
}

/// One condition of a `where` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KqlCondition {
    /// `column <op> 'value'`.
    Compare {
        /// The column.
        column: KqlColumn,
        /// The operator.
        operator: KqlComparison,
        /// The value (any text; quoted when written).
        value: String,
    },
    /// `column in~ ('a', 'b')` or `column in ('a', 'b')`.
    In {
        /// The column.
        column: KqlColumn,
        /// The values (at least one).
        values: Vec<String>,
        /// `in~` instead of `in`.
        ignore_case: bool,
    },
}

impl KqlCondition {
    /// `column =~ 'value'`.
    pub fn equals_ignore_case(column: KqlColumn, value: impl Into<String>) -> Self {
        Self::compare(column, KqlComparison::EqualsIgnoreCase, value)
    }

    /// `column == 'value'`.
    pub fn equals(column: KqlColumn, value: impl Into<String>) -> Self {
        Self::compare(column, KqlComparison::Equals, value)
    }

    /// `column != 'value'`.
    pub fn not_equals(column: KqlColumn, value: impl Into<String>) -> Self {
        Self::compare(column, KqlComparison::NotEquals, value)
    }

    /// `column !~ 'value'`.
    pub fn not_equals_ignore_case(column: KqlColumn, value: impl Into<String>) -> Self {
        Self::compare(column, KqlComparison::NotEqualsIgnoreCase, value)
    }

    /// `column in~ ('a', …)`.
    pub fn in_ignore_case<I, S>(column: KqlColumn, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KqlCondition::In {
            column,
            values: values.into_iter().map(Into::into).collect(),
            ignore_case: true,
        }
    }

    /// `column in ('a', …)`.
    pub fn in_list<I, S>(column: KqlColumn, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KqlCondition::In {
            column,
            values: values.into_iter().map(Into::into).collect(),
            ignore_case: false,
        }
    }

    fn compare(column: KqlColumn, operator: KqlComparison, value: impl Into<String>) -> Self {
        KqlCondition::Compare {
            column,
            operator,
            value: value.into(),
        }
    }

    fn write(&self, out: &mut String) -> Result<(), KqlError> {
        match self {
            KqlCondition::Compare {
                column,
                operator,
                value,
            } => {
                let _ = write!(
                    out,
                    "{} {} {}",
                    column.as_str(),
                    operator.as_str(),
                    quote(value)?
                );
            }
            KqlCondition::In {
                column,
                values,
                ignore_case,
            } => {
                if values.is_empty() {
                    return Err(KqlError::EmptyList {
                        column: column.as_str(),
                    });
                }
                let quoted = values
                    .iter()
                    .map(|value| quote(value))
                    .collect::<Result<Vec<_>, _>>()?;
                let operator = if *ignore_case { "in~" } else { "in" };
                let _ = write!(
                    out,
                    "{} {operator} ({})",
                    column.as_str(),
                    quoted.join(", ")
                );
            }
        }
        Ok(())
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    /// `asc`.
    Ascending,
    /// `desc`.
    Descending,
}

/// A query that cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KqlError {
    /// A value contains a control character other than tab, CR or LF.
    #[error("a value in the query contains a control character")]
    ControlCharacter,
    /// An `in` list is empty.
    #[error("the list of values for {column} is empty")]
    EmptyList {
        /// The column.
        column: &'static str,
    },
    /// A projected name or path is not a plain (dotted) identifier.
    #[error("'{0}' is not a valid column name or path")]
    InvalidIdentifier(&'static str),
    /// A stage is empty or starts with its own `|`.
    #[error("'{0}' is not a tabular operator")]
    InvalidStage(String),
}

fn stage_name(stage: &str) -> String {
    stage.chars().take(40).collect()
}

/// A `project` item: a column or `alias = dotted.path`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Projection {
    alias: Option<&'static str>,
    path: &'static str,
}

/// A Resource Graph query over the `Resources` table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourcesQuery {
    clauses: Vec<Vec<KqlCondition>>,
    stages: Vec<&'static str>,
    projection: Vec<Projection>,
    order_by: Option<(&'static str, SortOrder)>,
    limit: Option<u32>,
}

impl ResourcesQuery {
    /// `Resources` with no clause.
    pub fn new() -> Self {
        Self::default()
    }

    /// `Resources | where type =~ 'microsoft.compute/virtualmachines'`.
    pub fn virtual_machines() -> Self {
        Self::new().filter([KqlCondition::equals_ignore_case(
            KqlColumn::Type,
            "microsoft.compute/virtualmachines",
        )])
    }

    /// Adds `| where c1 and c2 …` (does nothing for no conditions).
    pub fn filter(mut self, conditions: impl IntoIterator<Item = KqlCondition>) -> Self {
        let conditions: Vec<KqlCondition> = conditions.into_iter().collect();
        if !conditions.is_empty() {
            self.clauses.push(conditions);
        }
        self
    }

    /// Adds `and condition` to the last `where` (starts one if there is none).
    pub fn and(mut self, condition: KqlCondition) -> Self {
        match self.clauses.last_mut() {
            Some(clause) => clause.push(condition),
            None => self.clauses.push(vec![condition]),
        }
        self
    }

    /// Adds `| <operator>` after the `where` clauses and before the projection: an
    /// `extend`, `mv-expand` or `join` written by the programmer (no value of a person's
    /// may reach it; filter with [`ResourcesQuery::filter`]).
    pub fn stage(mut self, operator: &'static str) -> Self {
        self.stages.push(operator);
        self
    }

    /// Projects a column or dotted path under its own name.
    pub fn project(mut self, path: &'static str) -> Self {
        self.projection.push(Projection { alias: None, path });
        self
    }

    /// Projects `alias = dotted.path`.
    pub fn project_as(mut self, alias: &'static str, path: &'static str) -> Self {
        self.projection.push(Projection {
            alias: Some(alias),
            path,
        });
        self
    }

    /// `| order by column asc|desc` (use `id` for stable paging).
    pub fn order_by(mut self, column: &'static str, order: SortOrder) -> Self {
        self.order_by = Some((column, order));
        self
    }

    /// `| limit n`.
    pub fn limit(mut self, rows: u32) -> Self {
        self.limit = Some(rows);
        self
    }

    /// The KQL text.
    pub fn to_kql(&self) -> Result<String, KqlError> {
        let mut out = String::from("Resources");
        for clause in &self.clauses {
            out.push_str(" | where ");
            for (index, condition) in clause.iter().enumerate() {
                if index > 0 {
                    out.push_str(" and ");
                }
                condition.write(&mut out)?;
            }
        }
        for stage in &self.stages {
            let stage = stage.trim();
            if stage.is_empty() || stage.starts_with('|') {
                return Err(KqlError::InvalidStage(stage_name(stage)));
            }
            out.push_str(" | ");
            out.push_str(stage);
        }
        if !self.projection.is_empty() {
            let items = self
                .projection
                .iter()
                .map(|item| {
                    check_identifier(item.path)?;
                    match item.alias {
                        Some(alias) => {
                            check_identifier(alias)?;
                            if alias.contains('.') {
                                return Err(KqlError::InvalidIdentifier(alias));
                            }
                            Ok(format!("{alias} = {}", item.path))
                        }
                        None => Ok(item.path.to_owned()),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push_str(" | project ");
            out.push_str(&items.join(", "));
        }
        if let Some((column, order)) = self.order_by {
            check_identifier(column)?;
            let direction = match order {
                SortOrder::Ascending => "asc",
                SortOrder::Descending => "desc",
            };
            let _ = write!(out, " | order by {column} {direction}");
        }
        if let Some(rows) = self.limit {
            let _ = write!(out, " | limit {rows}");
        }
        Ok(out)
    }
}

/// Writes `value` as a single-quoted KQL string literal: `\` and `'` are escaped, tab,
/// CR and LF become `\t`, `\r`, `\n`; other control characters are refused.
pub fn quote(value: &str) -> Result<String, KqlError> {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for character in value.chars() {
        match character {
            '\\' => quoted.push_str("\\\\"),
            '\'' => quoted.push_str("\\'"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            other if other.is_control() => return Err(KqlError::ControlCharacter),
            other => quoted.push(other),
        }
    }
    quoted.push('\'');
    Ok(quoted)
}

fn check_identifier(name: &'static str) -> Result<(), KqlError> {
    let valid_part = |part: &str| {
        part.chars()
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && part
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '_')
    };
    if name.split('.').all(valid_part) {
        Ok(())
    } else {
        Err(KqlError::InvalidIdentifier(name))
    }
}
